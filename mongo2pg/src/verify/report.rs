//! What `verify` found: the report it prints and the exit status it makes.

/// What verification found, for people (Display) and scripts (`differences`).
#[derive(Debug, Default)]
pub struct Report {
    /// The report printed.
    pub text: String,
    /// Differences left (after repair, if asked).
    pub differences: u64,
    /// Documents the mapping refuses that wait in `_migrate_rejects`: accounted for,
    /// not landed.
    pub rejected: u64,
}

impl Report {
    /// 4 when differences are left; else 5 when rejects wait, as `status` (accounted
    /// for, not landed); else 0.
    pub fn exit_status(&self) -> crate::error::ExitStatus {
        use crate::error::ExitStatus;
        if self.differences > 0 {
            ExitStatus::DIFFERENT
        } else if self.rejected > 0 {
            ExitStatus::REJECTED
        } else {
            ExitStatus::SUCCESS
        }
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}
