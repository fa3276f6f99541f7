//! The subject common name of an X.509 certificate, read by walking just enough DER
//! (RFC 5280 §4.1) to reach it; the certificate has already been verified by rustls.

/// DER tag of a SEQUENCE.
const SEQUENCE: u8 = 0x30;
/// DER tag of a SET.
const SET: u8 = 0x31;
/// DER tag of an OBJECT IDENTIFIER.
const OID: u8 = 0x06;
/// The explicit `[0]` that holds a certificate's version.
const VERSION: u8 = 0xa0;
/// id-at-commonName, 2.5.4.3, as encoded.
const COMMON_NAME: [u8; 3] = [0x55, 0x04, 0x03];

/// One tag-length-value: the tag, its contents and what follows it.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |len, &b| (len << 8) | usize::from(b));
        (len, &rest[count..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The contents of the element at the head of `input`, which must have `tag`.
fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (found, contents, rest) = tlv(input)?;
    (found == tag).then_some((contents, rest))
}

/// The subject's common name of a DER certificate, if it has a readable one.
pub fn common_name(cert: &[u8]) -> Option<String> {
    let (certificate, _) = expect(cert, SEQUENCE)?;
    let (tbs, _) = expect(certificate, SEQUENCE)?;
    let mut rest = tbs;
    if rest.first() == Some(&VERSION) {
        rest = tlv(rest)?.2;
    }
    // serialNumber, signature, issuer, validity; then subject.
    for _ in 0..4 {
        rest = tlv(rest)?.2;
    }
    let (mut names, _) = expect(rest, SEQUENCE)?;
    while !names.is_empty() {
        let (set, after) = expect(names, SET)?;
        names = after;
        let mut attributes = set;
        while !attributes.is_empty() {
            let (attribute, after) = expect(attributes, SEQUENCE)?;
            attributes = after;
            let (oid, value) = expect(attribute, OID)?;
            if oid == COMMON_NAME {
                // UTF8String, PrintableString, IA5String or TeletexString: text either way.
                let (_, text, _) = tlv(value)?;
                return Some(String::from_utf8_lossy(text).into_owned());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_common_name_of_a_generated_certificate() {
        let ca = crate::tls::certs::Ca::new("unit").unwrap();
        let client = ca.client("alice").unwrap();
        let der = rustls::pki_types::CertificateDer::from_pem_slice(client.cert_pem.as_bytes());
        use rustls::pki_types::pem::PemObject;
        assert_eq!(common_name(&der.unwrap()).as_deref(), Some("alice"));
    }

    #[test]
    fn garbage_gives_none() {
        assert_eq!(common_name(&[]), None);
        assert_eq!(common_name(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(common_name(&[0x30, 0x03, 0x30, 0x01]), None);
    }
}
