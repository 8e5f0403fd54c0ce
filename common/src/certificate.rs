//! What a refused TLS handshake says about the server's certificate, so that an error
//! line names the cause (expired, not valid yet) instead of pointing at the CA.

/// The advice for a certificate the TLS library refused for its dates, from the words
/// of its error (rustls: "certificate expired: verification time …", "certificate not
/// valid yet …"); `None` for every other failure.
pub fn advice(detail: &str) -> Option<&'static str> {
    let detail = detail.to_lowercase();
    if detail.contains("expired") {
        Some("the server's certificate has expired (or this machine's clock is wrong): renew the certificate")
    } else if detail.contains("not valid yet") || detail.contains("notvalidyet") {
        Some("the server's certificate is not valid yet: check this machine's clock and the certificate's dates")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_and_early_certificates_are_named() {
        assert!(advice(
            "invalid peer certificate: certificate expired: verification time 1796089251 (UNIX)"
        )
        .is_some_and(|a| a.contains("has expired")));
        assert!(advice("invalid peer certificate: Expired").is_some());
        assert!(
            advice("invalid peer certificate: certificate not valid yet")
                .is_some_and(|a| a.contains("not valid yet"))
        );
        assert_eq!(advice("invalid peer certificate: UnknownIssuer"), None);
    }
}
