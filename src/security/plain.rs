//! The PLAIN mechanism's single message (RFC 4616): `[authzid] NUL authcid NUL passwd`.

/// A parsed PLAIN message.
#[derive(Debug, PartialEq, Eq)]
pub struct PlainToken<'a> {
    /// The user logging in.
    pub user: &'a str,
    /// Their password.
    pub password: &'a str,
}

/// Parse a PLAIN message. As in Kafka, an authorization id, when given, must be the user.
pub fn parse(message: &[u8]) -> Result<PlainToken<'_>, &'static str> {
    let text = std::str::from_utf8(message).map_err(|_| "not UTF-8")?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("expected authzid NUL user NUL password");
    };
    if user.is_empty() || password.is_empty() {
        return Err("empty user or password");
    }
    if !authzid.is_empty() && authzid != user {
        return Err("an authorization id other than the user");
    }
    Ok(PlainToken { user, password })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_tokens_parse_and_bad_ones_do_not() {
        assert_eq!(
            parse(b"\0alice\0pw").unwrap(),
            PlainToken {
                user: "alice",
                password: "pw"
            }
        );
        assert!(parse(b"alice\0alice\0pw").is_ok());
        assert!(parse(b"bob\0alice\0pw").is_err());
        assert!(parse(b"alice\0pw").is_err());
        assert!(parse(b"\0\0pw").is_err());
    }
}
