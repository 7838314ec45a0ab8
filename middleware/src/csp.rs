//! [`Csp`]: a Content-Security-Policy checked when it is built, with
//! optional per-request nonces.
//!
//! Every CSP level 3 fetch, document, navigation and reporting directive is
//! a [`Directive`]. [`CspBuilder::build`] refuses what browsers would
//! silently misread:
//!
//! - an unquoted keyword (`self` for `'self'`: a browser reads it as a host
//!   named `self`), an unknown quoted keyword (`'selfie'`);
//! - a directive given twice (browsers keep the first and drop the rest);
//! - `'none'` beside other sources (it is then ignored);
//! - a value with `;`, `,`, whitespace, control or non-ASCII characters
//!   (a header injection, or a second directive smuggled into a value);
//! - in [strict](CspBuilder::strict) mode, `'unsafe-inline'` beside a nonce
//!   (browsers ignore it then; in strict mode it is a mistake, not a
//!   fallback for old browsers).
//!
//! With [`nonce`](CspBuilder::nonce), `SecurityHeadersLayer` draws a fresh
//! 128-bit nonce for every response, adds `'nonce-…'` to `script-src` and
//! `style-src` (created from `default-src` when absent, which is what the
//! browser would have fallen back to), and hands it to handlers as
//! [`CspNonce`](crate::security_headers::CspNonce).
//!
//! ```
//! use keystile_middleware::csp::{Csp, CspError, Directive};
//!
//! let csp = Csp::builder()
//!     .directive(Directive::DefaultSrc, ["'self'"])
//!     .directive(Directive::ImgSrc, ["'self'", "data:"])
//!     .directive(Directive::ObjectSrc, ["'none'"])
//!     .report_uri("/csp-reports")
//!     .nonce()
//!     .build()?;
//! assert_eq!(
//!     csp.render("abc"),
//!     "default-src 'self'; img-src 'self' data:; object-src 'none'; \
//!      report-uri /csp-reports; script-src 'self' 'nonce-abc'; style-src 'self' 'nonce-abc'"
//! );
//!
//! let unquoted = Csp::builder().directive(Directive::ScriptSrc, ["self"]).build();
//! assert!(matches!(unquoted, Err(CspError::UnquotedKeyword { .. })));
//! # Ok::<(), CspError>(())
//! ```

use std::fmt;

use http::HeaderName;

/// The enforcing header.
pub const CONTENT_SECURITY_POLICY: HeaderName = http::header::CONTENT_SECURITY_POLICY;
/// The header of a policy that only reports.
pub const CONTENT_SECURITY_POLICY_REPORT_ONLY: HeaderName =
    http::header::CONTENT_SECURITY_POLICY_REPORT_ONLY;
/// The Reporting API endpoints header that `report-to` groups name.
pub const REPORTING_ENDPOINTS: HeaderName = HeaderName::from_static("reporting-endpoints");

/// A CSP level 3 directive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Directive {
    /// `child-src`
    ChildSrc,
    /// `connect-src`
    ConnectSrc,
    /// `default-src`
    DefaultSrc,
    /// `fenced-frame-src`
    FencedFrameSrc,
    /// `font-src`
    FontSrc,
    /// `frame-src`
    FrameSrc,
    /// `img-src`
    ImgSrc,
    /// `manifest-src`
    ManifestSrc,
    /// `media-src`
    MediaSrc,
    /// `object-src`
    ObjectSrc,
    /// `script-src`
    ScriptSrc,
    /// `script-src-elem`
    ScriptSrcElem,
    /// `script-src-attr`
    ScriptSrcAttr,
    /// `style-src`
    StyleSrc,
    /// `style-src-elem`
    StyleSrcElem,
    /// `style-src-attr`
    StyleSrcAttr,
    /// `worker-src`
    WorkerSrc,
    /// `base-uri` (document)
    BaseUri,
    /// `sandbox` (document): its values are `allow-…` tokens.
    Sandbox,
    /// `form-action` (navigation)
    FormAction,
    /// `frame-ancestors` (navigation)
    FrameAncestors,
    /// `report-uri` (reporting): set with [`CspBuilder::report_uri`].
    ReportUri,
    /// `report-to` (reporting): set with [`CspBuilder::report_to`].
    ReportTo,
    /// `upgrade-insecure-requests` (no values)
    UpgradeInsecureRequests,
    /// `require-trusted-types-for`
    RequireTrustedTypesFor,
    /// `trusted-types`
    TrustedTypes,
}

/// What a directive's values are.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Values {
    /// A source list: hosts, schemes and quoted keywords.
    Sources,
    /// Tokens or URLs, checked only for forbidden characters.
    Tokens,
    /// Nothing at all.
    None,
}

impl Directive {
    /// The directive's name in the header.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChildSrc => "child-src",
            Self::ConnectSrc => "connect-src",
            Self::DefaultSrc => "default-src",
            Self::FencedFrameSrc => "fenced-frame-src",
            Self::FontSrc => "font-src",
            Self::FrameSrc => "frame-src",
            Self::ImgSrc => "img-src",
            Self::ManifestSrc => "manifest-src",
            Self::MediaSrc => "media-src",
            Self::ObjectSrc => "object-src",
            Self::ScriptSrc => "script-src",
            Self::ScriptSrcElem => "script-src-elem",
            Self::ScriptSrcAttr => "script-src-attr",
            Self::StyleSrc => "style-src",
            Self::StyleSrcElem => "style-src-elem",
            Self::StyleSrcAttr => "style-src-attr",
            Self::WorkerSrc => "worker-src",
            Self::BaseUri => "base-uri",
            Self::Sandbox => "sandbox",
            Self::FormAction => "form-action",
            Self::FrameAncestors => "frame-ancestors",
            Self::ReportUri => "report-uri",
            Self::ReportTo => "report-to",
            Self::UpgradeInsecureRequests => "upgrade-insecure-requests",
            Self::RequireTrustedTypesFor => "require-trusted-types-for",
            Self::TrustedTypes => "trusted-types",
        }
    }

    fn values(self) -> Values {
        match self {
            Self::Sandbox
            | Self::ReportUri
            | Self::ReportTo
            | Self::RequireTrustedTypesFor
            | Self::TrustedTypes => Values::Tokens,
            Self::UpgradeInsecureRequests => Values::None,
            _ => Values::Sources,
        }
    }

    /// Whether the nonce goes into this directive.
    fn takes_nonce(self) -> bool {
        matches!(
            self,
            Self::ScriptSrc | Self::ScriptSrcElem | Self::StyleSrc | Self::StyleSrcElem
        )
    }
}

impl fmt::Display for Directive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Keywords that mean something only when single-quoted.
const KEYWORDS: [&str; 11] = [
    "self",
    "none",
    "unsafe-inline",
    "unsafe-eval",
    "unsafe-hashes",
    "strict-dynamic",
    "report-sample",
    "wasm-unsafe-eval",
    "unsafe-allow-redirects",
    "inline-speculation-rules",
    "script",
];

/// Quoted sources that take a value after a dash (`'nonce-…'`, hashes).
const QUOTED_PREFIXES: [&str; 4] = ["nonce-", "sha256-", "sha384-", "sha512-"];

/// A policy that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CspError {
    /// A keyword without its quotes, read by browsers as a host name.
    #[error("{directive}: `{value}` must be quoted: `'{value}'`")]
    UnquotedKeyword {
        /// The directive.
        directive: Directive,
        /// The value as given.
        value: String,
    },
    /// A quoted value that is no CSP keyword, nonce or hash.
    #[error("{directive}: {value} is not a CSP keyword, nonce or hash")]
    UnknownKeyword {
        /// The directive.
        directive: Directive,
        /// The value as given.
        value: String,
    },
    /// The same directive twice: browsers would drop the second.
    #[error("{0} is given twice")]
    DuplicateDirective(Directive),
    /// `'none'` beside other sources, which makes browsers ignore it.
    #[error("{0}: 'none' must be the only source")]
    NoneWithOthers(Directive),
    /// A value with `;`, `,`, whitespace, control or non-ASCII characters.
    #[error("{directive}: a value may not contain `;`, `,`, whitespace or non-ASCII: {value:?}")]
    InvalidValue {
        /// The directive.
        directive: Directive,
        /// The value as given.
        value: String,
    },
    /// A source-list directive with no source (use `'none'`), or values on
    /// a directive that takes none.
    #[error("{0}: wrong number of values (a source list needs one, at least `'none'`)")]
    WrongValueCount(Directive),
    /// `'unsafe-inline'` beside a nonce in strict mode.
    #[error("{0}: 'unsafe-inline' beside a nonce (strict mode)")]
    UnsafeInlineWithNonce(Directive),
}

/// A checked policy; see the [module docs](self).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Csp {
    /// The header value, split where the nonce goes (one part without a
    /// nonce).
    parts: Vec<String>,
    report_only: bool,
    endpoints: Option<String>,
}

/// Configures a [`Csp`].
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct CspBuilder {
    directives: Vec<(Directive, Vec<String>)>,
    endpoints: Vec<(String, String)>,
    report_only: bool,
    nonce: bool,
    strict: bool,
}

impl Csp {
    /// Starts an empty policy.
    pub fn builder() -> CspBuilder {
        CspBuilder::default()
    }

    /// Whether the policy needs a nonce per response.
    pub fn uses_nonce(&self) -> bool {
        self.parts.len() > 1
    }

    /// Whether the policy only reports (`Content-Security-Policy-Report-Only`).
    pub fn is_report_only(&self) -> bool {
        self.report_only
    }

    /// The header this policy is sent in.
    pub fn header_name(&self) -> HeaderName {
        if self.report_only {
            CONTENT_SECURITY_POLICY_REPORT_ONLY
        } else {
            CONTENT_SECURITY_POLICY
        }
    }

    /// The `Reporting-Endpoints` value the `report-to` groups need, if any.
    pub fn reporting_endpoints(&self) -> Option<&str> {
        self.endpoints.as_deref()
    }

    /// The header value with `nonce` in place (ignored by a policy without
    /// nonces).
    pub fn render(&self, nonce: &str) -> String {
        self.parts.join(nonce)
    }
}

impl CspBuilder {
    /// Sets `directive` to `values` (sources such as `'self'`,
    /// `https://cdn.example.test`, `data:`; tokens for `sandbox`; none for
    /// `upgrade-insecure-requests`).
    pub fn directive<I, S>(mut self, directive: Directive, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.directives
            .push((directive, values.into_iter().map(Into::into).collect()));
        self
    }

    /// Sends violation reports to `uri` (`report-uri`, answered with
    /// `application/csp-report` by every browser that reports).
    pub fn report_uri(self, uri: impl Into<String>) -> Self {
        self.directive(Directive::ReportUri, [uri.into()])
    }

    /// Sends violation reports to the Reporting API group `group`, posted
    /// to `url` (`report-to` plus a `Reporting-Endpoints` header).
    pub fn report_to(mut self, group: impl Into<String>, url: impl Into<String>) -> Self {
        let group = group.into();
        self.endpoints.push((group.clone(), url.into()));
        self.directive(Directive::ReportTo, [group])
    }

    /// Reports violations without blocking anything
    /// (`Content-Security-Policy-Report-Only`).
    pub fn report_only(mut self) -> Self {
        self.report_only = true;
        self
    }

    /// A fresh nonce in `script-src` and `style-src` for every response.
    pub fn nonce(mut self) -> Self {
        self.nonce = true;
        self
    }

    /// Refuses `'unsafe-inline'` beside a nonce.
    pub fn strict(mut self) -> Self {
        self.strict = true;
        self
    }

    /// The policy, or the first mistake in it.
    pub fn build(mut self) -> Result<Csp, CspError> {
        let mut seen = Vec::new();
        for (directive, values) in &self.directives {
            if seen.contains(directive) {
                return Err(CspError::DuplicateDirective(*directive));
            }
            seen.push(*directive);
            check_values(*directive, values)?;
        }
        for (group, url) in &self.endpoints {
            for value in [group, url] {
                check_characters(Directive::ReportTo, value)?;
                if value.contains('"') {
                    return Err(CspError::InvalidValue {
                        directive: Directive::ReportTo,
                        value: value.clone(),
                    });
                }
            }
        }
        if self.nonce {
            let fallback = self
                .directives
                .iter()
                .find(|(d, _)| *d == Directive::DefaultSrc)
                .map(|(_, values)| values.clone());
            for wanted in [Directive::ScriptSrc, Directive::StyleSrc] {
                if !self.directives.iter().any(|(d, _)| *d == wanted) {
                    // What the browser falls back to, minus a 'none' that the
                    // nonce makes meaningless.
                    let mut values = fallback.clone().unwrap_or_default();
                    values.retain(|v| !v.eq_ignore_ascii_case("'none'"));
                    self.directives.push((wanted, values));
                }
            }
            for (directive, values) in &mut self.directives {
                if !directive.takes_nonce() {
                    continue;
                }
                if self.strict
                    && values
                        .iter()
                        .any(|v| v.eq_ignore_ascii_case("'unsafe-inline'"))
                {
                    return Err(CspError::UnsafeInlineWithNonce(*directive));
                }
                values.retain(|v| !v.eq_ignore_ascii_case("'none'"));
                values.push(format!("'nonce-{NONCE_SLOT}'"));
            }
        }
        let text = self
            .directives
            .iter()
            .map(|(directive, values)| {
                let mut out = directive.as_str().to_owned();
                for value in values {
                    out.push(' ');
                    out.push_str(value);
                }
                out
            })
            .collect::<Vec<_>>()
            .join("; ");
        let endpoints = (!self.endpoints.is_empty()).then(|| {
            self.endpoints
                .iter()
                .map(|(group, url)| format!("{group}=\"{url}\""))
                .collect::<Vec<_>>()
                .join(", ")
        });
        Ok(Csp {
            parts: text.split(NONCE_SLOT).map(str::to_owned).collect(),
            report_only: self.report_only,
            endpoints,
        })
    }
}

/// Where each nonce goes while the policy is assembled: a character no
/// checked value can hold, so the rendered text splits there.
const NONCE_SLOT: char = '\0';

fn check_values(directive: Directive, values: &[String]) -> Result<(), CspError> {
    match directive.values() {
        Values::None if !values.is_empty() => return Err(CspError::WrongValueCount(directive)),
        Values::Sources if values.is_empty() => return Err(CspError::WrongValueCount(directive)),
        _ => {}
    }
    for value in values {
        check_characters(directive, value)?;
        if directive.values() != Values::Sources {
            continue;
        }
        if KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(value)) {
            return Err(CspError::UnquotedKeyword {
                directive,
                value: value.clone(),
            });
        }
        if let Some(inner) = value.strip_prefix('\'') {
            let known = inner.strip_suffix('\'').is_some_and(|word| {
                KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(word))
                    || QUOTED_PREFIXES
                        .iter()
                        .any(|p| word.len() > p.len() && word[..p.len()].eq_ignore_ascii_case(p))
            });
            if !known {
                return Err(CspError::UnknownKeyword {
                    directive,
                    value: value.clone(),
                });
            }
        }
    }
    if values.len() > 1 && values.iter().any(|v| v.eq_ignore_ascii_case("'none'")) {
        return Err(CspError::NoneWithOthers(directive));
    }
    Ok(())
}

fn check_characters(directive: Directive, value: &str) -> Result<(), CspError> {
    let clean = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b';' && b != b',');
    if clean {
        Ok(())
    } else {
        Err(CspError::InvalidValue {
            directive,
            value: value.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_render_in_order_and_nonces_fill_their_slots() {
        let csp = Csp::builder()
            .directive(Directive::DefaultSrc, ["'none'"])
            .directive(Directive::ScriptSrc, ["'self'", "'strict-dynamic'"])
            .directive(Directive::UpgradeInsecureRequests, Vec::<String>::new())
            .nonce()
            .build()
            .unwrap();
        assert!(csp.uses_nonce());
        assert_eq!(
            csp.render("N1"),
            "default-src 'none'; script-src 'self' 'strict-dynamic' 'nonce-N1'; \
             upgrade-insecure-requests; style-src 'nonce-N1'"
        );
        let plain = Csp::builder()
            .directive(Directive::DefaultSrc, ["'self'"])
            .build()
            .unwrap();
        assert!(!plain.uses_nonce());
        assert_eq!(plain.render("ignored"), "default-src 'self'");
        assert_eq!(plain.header_name(), CONTENT_SECURITY_POLICY);
    }

    #[test]
    fn every_mistake_is_refused_at_build_time() {
        let build = |d: Directive, values: &[&str]| {
            Csp::builder()
                .directive(d, values.iter().copied())
                .build()
                .unwrap_err()
        };
        assert!(matches!(
            build(Directive::ScriptSrc, &["self"]),
            CspError::UnquotedKeyword { .. }
        ));
        assert!(matches!(
            build(Directive::ScriptSrc, &["UNSAFE-INLINE"]),
            CspError::UnquotedKeyword { .. }
        ));
        assert!(matches!(
            build(Directive::ScriptSrc, &["'selfie'"]),
            CspError::UnknownKeyword { .. }
        ));
        assert!(matches!(
            build(Directive::ScriptSrc, &["'self"]),
            CspError::UnknownKeyword { .. }
        ));
        assert!(matches!(
            build(Directive::ImgSrc, &["'none'", "data:"]),
            CspError::NoneWithOthers(_)
        ));
        assert!(matches!(
            build(Directive::ImgSrc, &[]),
            CspError::WrongValueCount(_)
        ));
        assert!(matches!(
            build(Directive::UpgradeInsecureRequests, &["x"]),
            CspError::WrongValueCount(_)
        ));
        for bad in [
            "a;b",
            "a,b",
            "a b",
            "a\tb",
            "a\r\nx-injected: 1",
            "caf\u{e9}.test",
            "",
        ] {
            assert!(
                matches!(
                    build(Directive::ImgSrc, &[bad]),
                    CspError::InvalidValue { .. }
                ),
                "{bad:?}"
            );
        }
        let twice = Csp::builder()
            .directive(Directive::ImgSrc, ["'self'"])
            .directive(Directive::ImgSrc, ["data:"])
            .build();
        assert_eq!(
            twice.unwrap_err(),
            CspError::DuplicateDirective(Directive::ImgSrc)
        );
        for inline in ["'unsafe-inline'", "'UNSAFE-INLINE'"] {
            let strict = Csp::builder()
                .directive(Directive::ScriptSrc, ["'self'", inline])
                .nonce()
                .strict()
                .build();
            assert_eq!(
                strict.unwrap_err(),
                CspError::UnsafeInlineWithNonce(Directive::ScriptSrc)
            );
        }
        let upper_none = Csp::builder()
            .directive(Directive::ScriptSrc, ["'NONE'"])
            .nonce()
            .build()
            .unwrap();
        assert!(
            !upper_none.render("n").contains("'NONE'"),
            "{}",
            upper_none.render("n")
        );
        // Without strict mode, 'unsafe-inline' stays as the old-browser
        // fallback that nonce-aware browsers ignore.
        assert!(
            Csp::builder()
                .directive(Directive::ScriptSrc, ["'unsafe-inline'"])
                .nonce()
                .build()
                .is_ok()
        );
    }

    #[test]
    fn hashes_nonces_and_tokens_are_accepted() {
        let csp = Csp::builder()
            .directive(
                Directive::ScriptSrc,
                ["'sha256-abc='", "'nonce-static'", "https:"],
            )
            .directive(Directive::Sandbox, ["allow-forms", "allow-scripts"])
            .directive(Directive::RequireTrustedTypesFor, ["'script'"])
            .report_to("csp", "https://example.test/csp-reports")
            .report_only()
            .build()
            .unwrap();
        assert_eq!(csp.header_name(), CONTENT_SECURITY_POLICY_REPORT_ONLY);
        assert_eq!(
            csp.reporting_endpoints(),
            Some(r#"csp="https://example.test/csp-reports""#)
        );
        assert!(csp.render("").ends_with("report-to csp"));
    }
}
