//! ACL checks, `auth`-scheme fix-up and the digest scheme (`user:base64(sha1(user:password))`).

use super::types::{Acl, ErrorCode, Id};

/// Whether `auth` (the session's identities) grants `perm` on a node with `acl`.
/// Any entry with a matching bit suffices, as in ZooKeeper's checkACL.
pub fn check(acl: &[Acl], perm: i32, auth: &[Id]) -> Result<(), ErrorCode> {
    if auth.iter().any(|a| a.scheme == "super") {
        return Ok(());
    }
    for a in acl {
        if a.perms & perm == 0 {
            continue;
        }
        if a.id.scheme == "world" && a.id.id == "anyone" {
            return Ok(());
        }
        for id in auth {
            if id.scheme == a.id.scheme && matches(&a.id, &id.id) {
                return Ok(());
            }
        }
    }
    Err(ErrorCode::NoAuth)
}

/// The top-level znodes the node keeps its own metadata under, where Kafka-on-ZooKeeper
/// kept it. ZooKeeper clients may read them (as far as their ACLs let them) but never
/// create, change, delete or re-ACL anything there: only the node itself (`super`) may.
pub const SYSTEM_ROOTS: [&str; 7] = [
    "/brokers",
    "/cluster",
    "/config",
    "/controller",
    "/controller_epoch",
    "/kafka-acl",
    "/kafka-acl-extended",
];

/// Whether `path` is one of [`SYSTEM_ROOTS`] or below one.
pub fn is_system_path(path: &str) -> bool {
    SYSTEM_ROOTS.iter().any(|root| {
        path.strip_prefix(root)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// Refuses a client's write to a system path with NoAuth (whatever the znode's ACL, and
/// for znodes at the root such as `/controller`, whatever the root's).
pub fn check_system_write(path: &str, auth: &[Id]) -> Result<(), ErrorCode> {
    if is_system_path(path) && !auth.iter().any(|a| a.scheme == "super") {
        return Err(ErrorCode::NoAuth);
    }
    Ok(())
}

/// The ACL of the system znodes the node makes: readable by anyone, everything to the
/// node's own identity (what getACL shows, like Kafka's with `zookeeper.set.acl`).
pub fn system_acl() -> Vec<Acl> {
    vec![
        Acl {
            perms: super::types::perms::READ,
            id: Id {
                scheme: "world".into(),
                id: "anyone".into(),
            },
        },
        Acl {
            perms: super::types::perms::ALL,
            id: Id {
                scheme: "super".into(),
                id: "bramble".into(),
            },
        },
    ]
}

fn matches(acl_id: &Id, who: &str) -> bool {
    match acl_id.scheme.as_str() {
        "ip" => ip_matches(&acl_id.id, who),
        _ => acl_id.id == who,
    }
}

/// `ip` scheme: exact address or `addr/bits` prefix (IPv4).
fn ip_matches(pattern: &str, who: &str) -> bool {
    let (addr, bits) = match pattern.split_once('/') {
        Some((a, b)) => (a, b.parse::<u32>().unwrap_or(33)),
        None => (pattern, 32),
    };
    match (
        addr.parse::<std::net::Ipv4Addr>(),
        who.parse::<std::net::Ipv4Addr>(),
    ) {
        (Ok(p), Ok(w)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(p) & mask == u32::from(w) & mask
        }
        _ => pattern == who,
    }
}

/// Validates an ACL given to create/setACL and replaces `auth` entries with the session's
/// authenticated identities (ZooKeeper's fixupACL).
pub fn fixup(acl: &[Acl], auth: &[Id]) -> Result<Vec<Acl>, ErrorCode> {
    if acl.is_empty() {
        return Err(ErrorCode::InvalidAcl);
    }
    let mut out: Vec<Acl> = Vec::with_capacity(acl.len());
    for a in acl {
        match a.id.scheme.as_str() {
            "world" if a.id.id == "anyone" => out.push(a.clone()),
            "auth" => {
                let mut any = false;
                for id in auth
                    .iter()
                    .filter(|i| i.scheme != "ip" && i.scheme != "super")
                {
                    any = true;
                    out.push(Acl {
                        perms: a.perms,
                        id: id.clone(),
                    });
                }
                if !any {
                    return Err(ErrorCode::InvalidAcl);
                }
            }
            "digest" if a.id.id.contains(':') => out.push(a.clone()),
            "ip" if valid_ip_pattern(&a.id.id) => out.push(a.clone()),
            // Only the node itself (in-process, as `super`) may give a znode to `super`: that
            // is how credentials and Kafka ACLs are kept from ZooKeeper clients.
            "super" if auth.iter().any(|i| i.scheme == "super") => out.push(a.clone()),
            _ => return Err(ErrorCode::InvalidAcl),
        }
    }
    let mut dedup: Vec<Acl> = Vec::with_capacity(out.len());
    for a in out {
        if !dedup.contains(&a) {
            dedup.push(a);
        }
    }
    Ok(dedup)
}

fn valid_ip_pattern(p: &str) -> bool {
    let (addr, bits) = match p.split_once('/') {
        Some((a, b)) => (a, b.parse::<u32>().ok()),
        None => (p, Some(32)),
    };
    matches!(bits, Some(b) if b <= 128) && addr.parse::<std::net::IpAddr>().is_ok()
}

/// The identity a `digest` auth packet `user:password` proves.
pub fn digest_id(user_password: &str) -> Option<Id> {
    let (user, _) = user_password.split_once(':')?;
    let hash = base64(&sha1(user_password.as_bytes()));
    Some(Id {
        scheme: "digest".into(),
        id: format!("{user}:{hash}"),
    })
}

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// SHA-1. Only for the digest scheme, which ZooKeeper defines with it.
pub fn sha1(data: &[u8]) -> [u8; 20] {
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, data);
    let mut out = [0u8; 20];
    out.copy_from_slice(digest.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::types::perms;

    #[test]
    fn system_paths_are_the_roots_and_below_them_only() {
        for path in [
            "/brokers",
            "/brokers/ids/1",
            "/controller",
            "/config/users/a",
            "/kafka-acl-extended/prefixed",
        ] {
            assert!(is_system_path(path), "{path}");
        }
        for path in [
            "/",
            "/brokersx",
            "/controller_epochs",
            "/app/brokers",
            "/zookeeper",
        ] {
            assert!(!is_system_path(path), "{path}");
        }
        let client = [Id {
            scheme: "digest".into(),
            id: "a:b".into(),
        }];
        assert_eq!(
            check_system_write("/controller", &client),
            Err(ErrorCode::NoAuth)
        );
        assert_eq!(check_system_write("/app", &client), Ok(()));
        let node = [Id {
            scheme: "super".into(),
            id: String::new(),
        }];
        assert_eq!(check_system_write("/controller", &node), Ok(()));
    }

    #[test]
    fn sha1_and_base64_match_known_vectors() {
        assert_eq!(base64(&sha1(b"abc")), "qZk+NkcGgWq6PiVxeFDCbJzQ2J0=");
        assert_eq!(base64(b"ab"), "YWI=");
    }

    #[test]
    fn digest_id_is_zookeepers() {
        // zkCli: addauth digest user:pass -> digest:user:smGaoVKd/cQkjm7b88GyorAUz20=
        assert_eq!(
            digest_id("user:pass").unwrap().id,
            "user:smGaoVKd/cQkjm7b88GyorAUz20="
        );
    }

    #[test]
    fn auth_scheme_needs_an_authenticated_identity() {
        let acl = vec![Acl {
            perms: perms::ALL,
            id: Id {
                scheme: "auth".into(),
                id: "".into(),
            },
        }];
        assert_eq!(fixup(&acl, &[]), Err(ErrorCode::InvalidAcl));
        let me = digest_id("u:p").unwrap();
        let fixed = fixup(&acl, std::slice::from_ref(&me)).unwrap();
        assert_eq!(fixed[0].id, me);
        assert!(check(&fixed, perms::READ, &[me]).is_ok());
        assert_eq!(check(&fixed, perms::READ, &[]), Err(ErrorCode::NoAuth));
    }
}
