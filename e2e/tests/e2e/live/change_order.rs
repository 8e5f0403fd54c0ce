//! The change path's one rule, checked deterministically against PostgreSQL: a change
//! lands only over an older version of its document, whatever order batches arrive
//! in and however many writers apply them at once (`landing::landing::land_changes`, the
//! transaction the consumers run).

use std::borrow::Cow;

use anyhow::{ensure, Result};
use bson::{doc, Bson, Document};
use common::batch::{Change, ChangeOp, Version};
use e2e::TestEnv;
use landing::changes::ChangeDoc;
use landing::landing::land_changes;
use landing::landing::Landed;
use landing::mapping::{MappingFile, TablePlan};
use landing::reject::Origin;

fn version(time: u32, increment: u32, ordinal: u32) -> Version {
    Version {
        time,
        increment,
        ordinal,
    }
}

/// One change: what happened to `_id` "x" at `version`, with the document after it.
fn change(op: ChangeOp, version: Version, n: i32) -> ChangeDoc<'static> {
    let doc: Document = if op == ChangeOp::Delete {
        doc! { "_id": "x" }
    } else {
        doc! { "_id": "x", "n": n }
    };
    ChangeDoc {
        change: Change { op, version },
        bytes: Cow::Owned(bson::serialize_to_vec(&doc).unwrap_or_default()),
    }
}

/// Applies one batch under a fresh batch id.
async fn land(
    client: &mut tokio_postgres::Client,
    plan: &TablePlan,
    id: &str,
    changes: &[ChangeDoc<'_>],
) -> Result<Landed> {
    let origin = Origin {
        run: "order",
        collection: "things",
        batch_id: id,
    };
    Ok(land_changes(client, plan, &origin, 0, changes).await?)
}

/// The document of "x" in the table: its `n`, or `None` when there is no row.
async fn held(client: &tokio_postgres::Client) -> Result<Option<i64>> {
    let rows = client
        .query("SELECT doc::text FROM things WHERE _id = 'x'", &[])
        .await?;
    ensure!(rows.len() <= 1, "x twice");
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let doc: serde_json::Value = serde_json::from_str(row.try_get(0)?)?;
    let n = Bson::try_from(doc["n"].clone())?;
    Ok(n.as_i32().map(i64::from))
}

#[tokio::test(flavor = "multi_thread")]
async fn newer_versions_win_in_any_order() -> Result<()> {
    let env = TestEnv::new("change_order").await?;
    let mut client = env.pg().await?;
    let plan = MappingFile::default().plan("things");
    landing::schema::ensure_bookkeeping(&mut client).await?;
    landing::schema::ensure_table(&mut client, &plan).await?;
    use ChangeOp::*;

    land(
        &mut client,
        &plan,
        "b1",
        &[change(Update, version(10, 1, 0), 1)],
    )
    .await?;
    ensure!(held(&client).await? == Some(1));
    // A delete, then an older update arriving late: the delete stays.
    land(
        &mut client,
        &plan,
        "b2",
        &[change(Delete, version(12, 0, 0), 0)],
    )
    .await?;
    land(
        &mut client,
        &plan,
        "b3",
        &[change(Update, version(11, 0, 0), 2)],
    )
    .await?;
    ensure!(
        held(&client).await?.is_none(),
        "an older update undid a delete"
    );
    // Inserted again after the delete: present.
    land(
        &mut client,
        &plan,
        "b4",
        &[change(Insert, version(13, 0, 0), 3)],
    )
    .await?;
    ensure!(held(&client).await? == Some(3));
    // The first batch again, cut otherwise (another id): changes nothing.
    let again = land(
        &mut client,
        &plan,
        "b1-again",
        &[change(Update, version(10, 1, 0), 1)],
    )
    .await?;
    ensure!(held(&client).await? == Some(3));
    ensure!(
        again
            == Landed::Committed {
                rows: 0,
                rejects: landing::reject::RejectCounts::default(),
                already: 1
            },
        "{again:?}"
    );
    // A batch id seen before is a duplicate, whatever it holds.
    let duplicate = land(
        &mut client,
        &plan,
        "b4",
        &[change(Update, version(99, 0, 0), 9)],
    )
    .await?;
    ensure!(duplicate == Landed::AlreadyClaimed);
    // A transaction's events share a cluster time; their ordinals order them, within
    // a batch and across batches.
    land(
        &mut client,
        &plan,
        "t1",
        &[
            change(Update, version(14, 1, 0), 4),
            change(Update, version(14, 1, 1), 5),
        ],
    )
    .await?;
    ensure!(held(&client).await? == Some(5));
    land(
        &mut client,
        &plan,
        "t2",
        &[change(Update, version(14, 1, 0), 4)],
    )
    .await?;
    ensure!(
        held(&client).await? == Some(5),
        "an earlier event of the transaction won"
    );
    land(
        &mut client,
        &plan,
        "t3",
        &[change(Delete, version(14, 1, 2), 0)],
    )
    .await?;
    ensure!(held(&client).await?.is_none());
    Ok(())
}

/// Two writers racing on one document, many times: an update and a newer delete
/// applied at once in separate transactions always end with no row, and an update and
/// an older delete always end with the update's document.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_keep_the_newest_version() -> Result<()> {
    let env = TestEnv::new("change_race").await?;
    let mut setup = env.pg().await?;
    let plan = MappingFile::default().plan("things");
    landing::schema::ensure_bookkeeping(&mut setup).await?;
    landing::schema::ensure_table(&mut setup, &plan).await?;
    let mut a = env.pg().await?;
    let mut b = env.pg().await?;
    use ChangeOp::*;
    for round in 0..40u32 {
        let base = 100 + round * 10;
        let (update_at, delete_at, expected) = if round % 2 == 0 {
            (base + 1, base + 2, None)
        } else {
            (base + 2, base + 1, Some(i64::from(round)))
        };
        let update = [change(Update, version(update_at, 0, 0), round as i32)];
        let delete = [change(Delete, version(delete_at, 0, 0), 0)];
        let (ua, ub) = (format!("u{round}"), format!("d{round}"));
        let (left, right) = tokio::join!(
            land(&mut a, &plan, &ua, &update),
            land(&mut b, &plan, &ub, &delete)
        );
        left?;
        right?;
        let now = held(&setup).await?;
        ensure!(
            now == expected,
            "round {round}: {now:?}, expected {expected:?}"
        );
        // Present again for the next round.
        land(
            &mut a,
            &plan,
            &format!("r{round}"),
            &[change(Insert, version(base + 5, 0, 0), -1)],
        )
        .await?;
    }
    Ok(())
}
