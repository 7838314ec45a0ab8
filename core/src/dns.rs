//! DNS names and labels as keystile accepts them in hosts and tenants.
//!
//! Hosts name tenants: the handoff issuer builds URLs from them and the
//! tenant resolvers read them from requests. Both accept only LDH names
//! (RFC 1123): labels of 1-63 ASCII letters, digits and `-`, not starting
//! or ending with `-`; at most 253 characters in all; no trailing dot. The
//! comparison is case-insensitive, so every accepted form is returned in
//! lowercase.
//!
//! ```
//! use keystile_core::dns::{dns_label, dns_name};
//!
//! assert_eq!(dns_label("Acme").as_deref(), Some("acme"));
//! assert_eq!(dns_label("acme.localhost"), None); // two labels
//! assert_eq!(dns_name("Acme.LocalHost").as_deref(), Some("acme.localhost"));
//! assert_eq!(dns_name("evil.test/x"), None);
//! assert_eq!(dns_name("-acme.test"), None);
//! ```

/// Longest label accepted.
pub const MAX_LABEL_LEN: usize = 63;
/// Longest name accepted.
pub const MAX_NAME_LEN: usize = 253;

/// `text` as a lowercase DNS label, or `None` when it is not one.
pub fn dns_label(text: &str) -> Option<String> {
    is_dns_label(text).then(|| text.to_ascii_lowercase())
}

/// Whether `text` is a DNS label (in any case): 1-63 letters, digits and
/// inner `-`.
pub fn is_dns_label(text: &str) -> bool {
    is_label(text.as_bytes())
}

/// `text` as a lowercase DNS name of one or more labels, or `None`.
pub fn dns_name(text: &str) -> Option<String> {
    is_dns_name(text).then(|| text.to_ascii_lowercase())
}

/// Whether `text` is a DNS name (in any case) of one or more labels.
pub fn is_dns_name(text: &str) -> bool {
    let bytes = text.as_bytes();
    !bytes.is_empty() && bytes.len() <= MAX_NAME_LEN && bytes.split(|b| *b == b'.').all(is_label)
}

/// Splits `host[:port]` (a `Host` header or URL authority) into a lowercase
/// DNS name and the port, refusing anything else: user info, IPv6
/// literals, empty or non-numeric ports, port 0.
pub fn host_and_port(authority: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = split_host_port(authority)?;
    Some((host.to_ascii_lowercase(), port))
}

/// [`host_and_port`] without the copy: the host is borrowed from
/// `authority` in its original case (compare it with
/// `eq_ignore_ascii_case`). For per-request paths that only compare.
pub fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = split_port(authority)?;
    is_dns_name(host).then_some((host, port))
}

/// Splits `host[:port]` at its last `:` and checks the port only (digits,
/// 1-65535): for a caller that checks the host itself, such as a resolver
/// that matches a known parent domain and then checks one label.
pub fn split_port(authority: &str) -> Option<(&str, Option<u16>)> {
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host, Some(parse_port(port)?))),
        None => Some((authority, None)),
    }
}

fn parse_port(text: &str) -> Option<u16> {
    // `u16::from_str` accepts a leading `+`; a port is digits only.
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u16>().ok().filter(|port| *port != 0)
}

/// Letters, digits and `-`, by byte.
const LDH: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric() || b == b'-' as usize;
        b += 1;
    }
    table
};

fn is_label(label: &[u8]) -> bool {
    !label.is_empty()
        && label.len() <= MAX_LABEL_LEN
        // One table load per byte and no branch: hosts are checked on
        // every request.
        && label.iter().fold(true, |ok, &b| ok & LDH[usize::from(b)])
        && label.first() != Some(&b'-')
        && label.last() != Some(&b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_of_one_byte_is_accepted_exactly_for_letters_and_digits() {
        for b in 0..=u8::MAX {
            let expected = b.is_ascii_alphanumeric();
            assert_eq!(is_label(&[b]), expected, "byte {b}");
            assert_eq!(
                is_label(&[b'a', b, b'z']),
                expected || b == b'-',
                "byte {b}"
            );
        }
    }

    #[test]
    fn split_port_checks_only_the_port() {
        assert_eq!(split_port("any thing:80"), Some(("any thing", Some(80))));
        assert_eq!(split_port("acme.test"), Some(("acme.test", None)));
        for bad in ["a:", "a:0", "a:+1", "a:65536", "a:x"] {
            assert_eq!(split_port(bad), None, "{bad}");
        }
    }

    #[test]
    fn split_host_port_borrows_the_host_in_its_case_and_checks_like_host_and_port() {
        assert_eq!(
            split_host_port("ACME.Example.test:8080"),
            Some(("ACME.Example.test", Some(8080)))
        );
        for authority in [
            "acme.test",
            "Acme.test:1",
            "a..b",
            "a:0",
            "a:+1",
            "[::1]:80",
            "u@a",
            "",
        ] {
            assert_eq!(
                split_host_port(authority).map(|(h, p)| (h.to_ascii_lowercase(), p)),
                host_and_port(authority),
                "{authority:?}"
            );
        }
    }

    #[test]
    fn labels_follow_ldh_rules() {
        assert_eq!(dns_label("a").as_deref(), Some("a"));
        assert_eq!(dns_label("x-1").as_deref(), Some("x-1"));
        assert_eq!(
            dns_label(&"a".repeat(63)).as_deref(),
            Some(&*"a".repeat(63))
        );
        for bad in [
            "",
            "-a",
            "a-",
            "a_b",
            "a.b",
            "é",
            "a b",
            "a\0",
            &"a".repeat(64),
        ] {
            assert_eq!(dns_label(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn names_refuse_empty_labels_and_trailing_dots() {
        assert_eq!(
            dns_name("ACME.example.test").as_deref(),
            Some("acme.example.test")
        );
        for bad in ["", ".", "a..b", "a.", ".a", "a/b", "a@b", "[::1]"] {
            assert_eq!(dns_name(bad), None, "{bad:?}");
        }
        let long = vec!["a".repeat(63); 4].join(".");
        assert_eq!(long.len(), 255);
        assert_eq!(dns_name(&long), None);
    }

    #[test]
    fn host_and_port_parses_strictly() {
        assert_eq!(
            host_and_port("Acme.localhost:3000"),
            Some(("acme.localhost".into(), Some(3000)))
        );
        assert_eq!(
            host_and_port("acme.localhost"),
            Some(("acme.localhost".into(), None))
        );
        for bad in [
            "acme.localhost:",
            "acme.localhost:0",
            "acme.localhost:65536",
            "acme.localhost:+80",
            "acme.localhost:80:80",
            "user@acme.localhost",
            "[::1]:80",
            "acme.localhost:8 0",
        ] {
            assert_eq!(host_and_port(bad), None, "{bad:?}");
        }
    }
}
