//! Inbound webhook signatures: GitHub, Slack, Stripe, Standard Webhooks and
//! a generic HMAC-SHA256 header, each behind the one [`WebhookScheme`]
//! trait.
//!
//! Every scheme checks an HMAC-SHA256 over the raw body (and, where the
//! provider signs one, a timestamp) in constant time, against any of its
//! secrets, so a secret can be rotated without a gap. Schemes that sign a
//! timestamp refuse one more than the tolerance (default 300 s) from the
//! injected clock, either way. Each names the delivery (its id header, or
//! the signature itself where the provider sends none), for replay defence
//! in the layer.
//!
//! | scheme | signature | signed content | delivery |
//! |---|---|---|---|
//! | [`GitHub`] | `X-Hub-Signature-256: sha256=<hex>` | body | the signature (GitHub does not sign `X-GitHub-Delivery`) |
//! | [`Slack`] | `X-Slack-Signature: v0=<hex>`, `X-Slack-Request-Timestamp` | `v0:{ts}:{body}` | the signature |
//! | [`Stripe`] | `Stripe-Signature: t=…,v1=<hex>[,v1=…]` (at most 8) | `{t}.{body}` | the event's `id` (else the signature) |
//! | [`StandardWebhooks`] | `webhook-signature: v1,<base64> …`, `webhook-id`, `webhook-timestamp` | `{id}.{ts}.{body}` | `webhook-id` |
//! | [`HmacHeader`] | any header, hex or base64, optional prefix | body | the signature |
//!
//! ```
//! use http::HeaderMap;
//! use keystile_core::mac::MacKey;
//! use keystile_core::webhook::{GitHub, WebhookScheme};
//!
//! let body = br#"{"zen":"Keep it logically awesome."}"#;
//! let tag = hex::encode(MacKey::new(b"s3cret").compute(body));
//! let mut headers = HeaderMap::new();
//! headers.insert("x-hub-signature-256", format!("sha256={tag}").parse().unwrap());
//! headers.insert("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958".parse().unwrap());
//!
//! let github = GitHub::new([b"s3cret".as_slice()]);
//! let delivery = github.verify(&headers, body, 1_700_000_000).unwrap();
//! assert_eq!(delivery.id, format!("github:{tag}"));
//! assert!(github.verify(&headers, b"{}", 1_700_000_000).is_err());
//! ```

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderName};

use crate::mac::{MacKey, TAG_LEN};

/// How far a signed timestamp may be from now, either way, by default.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// A verified delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// What names this delivery for replay defence: the provider's
    /// delivery id, or the signature where it sends none.
    pub id: String,
    /// The signed timestamp (Unix seconds), for schemes that sign one.
    pub timestamp: Option<u64>,
}

/// Why a delivery was refused. The body is never part of the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// A header the scheme needs is absent.
    #[error("missing {0} header")]
    Missing(&'static str),
    /// A header the scheme needs does not parse.
    #[error("malformed {0} header")]
    Malformed(&'static str),
    /// No secret's signature matches.
    #[error("signature does not match")]
    BadSignature,
    /// The signed timestamp is too far from now.
    #[error("timestamp outside the tolerance")]
    Stale,
}

/// Verifies one provider's signature over a delivery; see the
/// [module docs](self). Implement it for a provider keystile does not ship.
pub trait WebhookScheme: Send + Sync + 'static {
    /// How far from now a signed timestamp may be (zero for schemes that
    /// sign none): the layer remembers deliveries at least this long.
    fn tolerance(&self) -> Duration {
        Duration::ZERO
    }

    /// Verifies `body` as delivered with `headers`, at `now` (Unix
    /// seconds).
    fn verify(&self, headers: &HeaderMap, body: &[u8], now: u64) -> Result<Delivery, WebhookError>;
}

/// The secrets of one scheme, any of which may have signed.
#[derive(Clone)]
struct Secrets(Vec<MacKey>);

impl Secrets {
    fn new<'a>(secrets: impl IntoIterator<Item = &'a [u8]>) -> Self {
        Self(secrets.into_iter().map(MacKey::new).collect())
    }

    /// The first of `tags` that some secret's MAC over `prefix || body`
    /// equals. The body is hashed once per secret, and every tag is compared
    /// with every MAC in constant time, so the time taken tells nothing of
    /// which matched.
    fn matching(&self, prefix: &[u8], body: &[u8], tags: &[Vec<u8>]) -> Option<Vec<u8>> {
        let macs: Vec<[u8; TAG_LEN]> = self
            .0
            .iter()
            .map(|secret| secret.with_prefix(prefix).compute(body))
            .collect();
        let mut found = None;
        for tag in tags {
            let mut matched = subtle::Choice::from(0);
            for mac in &macs {
                matched |= subtle::ConstantTimeEq::ct_eq(mac.as_slice(), tag.as_slice());
            }
            if bool::from(matched) && found.is_none() {
                found = Some(tag.clone());
            }
        }
        found
    }
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} secret(s)", self.0.len())
    }
}

fn text<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<&'h str, WebhookError> {
    let mut values = headers.get_all(name).iter();
    let value = values.next().ok_or(WebhookError::Missing(name))?;
    if values.next().is_some() {
        return Err(WebhookError::Malformed(name));
    }
    value.to_str().map_err(|_| WebhookError::Malformed(name))
}

/// The most signatures one delivery may carry (Stripe sends one per active
/// secret): each costs a comparison, so the count is bounded.
const MAX_TAGS: usize = 8;

/// The id of a delivery named by its signature: the scheme and the tag's
/// bytes in lowercase hex, however the header spelled them.
fn tag_id(scheme: &str, tag: &[u8]) -> String {
    format!("{scheme}:{}", hex::encode(tag))
}

fn hex_tag(text: &str, name: &'static str) -> Result<Vec<u8>, WebhookError> {
    match hex::decode(text) {
        Ok(tag) if tag.len() == TAG_LEN => Ok(tag),
        _ => Err(WebhookError::Malformed(name)),
    }
}

fn timestamp(
    text: &str,
    name: &'static str,
    now: u64,
    tolerance: Duration,
) -> Result<u64, WebhookError> {
    let ts: u64 = text.parse().map_err(|_| WebhookError::Malformed(name))?;
    if ts.abs_diff(now) > tolerance.as_secs() {
        return Err(WebhookError::Stale);
    }
    Ok(ts)
}

/// GitHub: `X-Hub-Signature-256: sha256=<hex of HMAC-SHA256(secret, body)>`,
/// GitHub signs neither a timestamp nor `X-GitHub-Delivery`, so the
/// delivery is named by its signature.
#[derive(Clone, Debug)]
pub struct GitHub {
    secrets: Secrets,
}

impl GitHub {
    /// Verifies with any of `secrets`.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a [u8]>) -> Self {
        Self {
            secrets: Secrets::new(secrets),
        }
    }
}

impl WebhookScheme for GitHub {
    fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        _now: u64,
    ) -> Result<Delivery, WebhookError> {
        const SIGNATURE: &str = "x-hub-signature-256";
        let signature = text(headers, SIGNATURE)?;
        let hex = signature
            .strip_prefix("sha256=")
            .ok_or(WebhookError::Malformed(SIGNATURE))?;
        let tag = hex_tag(hex, SIGNATURE)?;
        let matched = self
            .secrets
            .matching(b"", body, &[tag])
            .ok_or(WebhookError::BadSignature)?;
        // GitHub does not sign `X-GitHub-Delivery`: a replay could carry
        // any value there, so the delivery is named by its signature.
        Ok(Delivery {
            id: tag_id("github", &matched),
            timestamp: None,
        })
    }
}

/// Slack: `X-Slack-Signature: v0=<hex>` over `v0:{ts}:{body}`, with
/// `X-Slack-Request-Timestamp` within the tolerance.
#[derive(Clone, Debug)]
pub struct Slack {
    secrets: Secrets,
    tolerance: Duration,
}

impl Slack {
    /// Verifies with any of `secrets` (signing secrets), within
    /// [`DEFAULT_TOLERANCE`].
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a [u8]>) -> Self {
        Self {
            secrets: Secrets::new(secrets),
            tolerance: DEFAULT_TOLERANCE,
        }
    }

    /// Accepts timestamps at most `tolerance` from now.
    #[must_use]
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }
}

impl WebhookScheme for Slack {
    fn tolerance(&self) -> Duration {
        self.tolerance
    }

    fn verify(&self, headers: &HeaderMap, body: &[u8], now: u64) -> Result<Delivery, WebhookError> {
        const SIGNATURE: &str = "x-slack-signature";
        const TIMESTAMP: &str = "x-slack-request-timestamp";
        let signature = text(headers, SIGNATURE)?;
        let hex = signature
            .strip_prefix("v0=")
            .ok_or(WebhookError::Malformed(SIGNATURE))?;
        let tag = hex_tag(hex, SIGNATURE)?;
        let ts_text = text(headers, TIMESTAMP)?;
        let ts = timestamp(ts_text, TIMESTAMP, now, self.tolerance)?;
        let prefix = format!("v0:{ts_text}:");
        let matched = self
            .secrets
            .matching(prefix.as_bytes(), body, &[tag])
            .ok_or(WebhookError::BadSignature)?;
        Ok(Delivery {
            id: tag_id("slack", &matched),
            timestamp: Some(ts),
        })
    }
}

/// Stripe: `Stripe-Signature: t=<ts>,v1=<hex>[,v1=<hex>…]` over
/// `{ts}.{body}`; any `v1` may match (Stripe sends one per active secret
/// during a rotation), `t` within the tolerance.
#[derive(Clone, Debug)]
pub struct Stripe {
    secrets: Secrets,
    tolerance: Duration,
}

impl Stripe {
    /// Verifies with any of `secrets` (`whsec_…` endpoint secrets, used as
    /// given), within [`DEFAULT_TOLERANCE`].
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a [u8]>) -> Self {
        Self {
            secrets: Secrets::new(secrets),
            tolerance: DEFAULT_TOLERANCE,
        }
    }

    /// Accepts timestamps at most `tolerance` from now.
    #[must_use]
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }
}

impl WebhookScheme for Stripe {
    fn tolerance(&self) -> Duration {
        self.tolerance
    }

    fn verify(&self, headers: &HeaderMap, body: &[u8], now: u64) -> Result<Delivery, WebhookError> {
        const SIGNATURE: &str = "stripe-signature";
        let signature = text(headers, SIGNATURE)?;
        let mut ts_text = None;
        let mut tags = Vec::new();
        for item in signature.split(',') {
            match item.trim_ascii().split_once('=') {
                Some(("t", value)) if ts_text.is_none() => ts_text = Some(value),
                Some(("t", _)) => return Err(WebhookError::Malformed(SIGNATURE)),
                Some(("v1", value)) if tags.len() < MAX_TAGS => {
                    tags.push(hex_tag(value, SIGNATURE)?);
                }
                Some(("v1", _)) => return Err(WebhookError::Malformed(SIGNATURE)),
                // Other schemes (v0 is Stripe's test-mode scheme) are not
                // accepted; unknown items are ignored, as Stripe asks.
                _ => {}
            }
        }
        let ts_text = ts_text.ok_or(WebhookError::Malformed(SIGNATURE))?;
        if tags.is_empty() {
            return Err(WebhookError::Malformed(SIGNATURE));
        }
        let ts = timestamp(ts_text, SIGNATURE, now, self.tolerance)?;
        let prefix = format!("{ts_text}.");
        let matched = self
            .secrets
            .matching(prefix.as_bytes(), body, &tags)
            .ok_or(WebhookError::BadSignature)?;
        // The event's id names the delivery: Stripe re-signs a retried event
        // with a new timestamp, and it is still the same event.
        let event = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|event| event.get("id")?.as_str().map(str::to_owned));
        Ok(Delivery {
            id: event.map_or_else(|| tag_id("stripe", &matched), |id| format!("stripe:{id}")),
            timestamp: Some(ts),
        })
    }
}

/// Standard Webhooks: `webhook-signature: v1,<base64> [v1,<base64> …]` over
/// `{webhook-id}.{webhook-timestamp}.{body}`, the timestamp within the
/// tolerance, the delivery named by `webhook-id`.
#[derive(Clone, Debug)]
pub struct StandardWebhooks {
    secrets: Secrets,
    tolerance: Duration,
}

/// A Standard Webhooks secret that is not `whsec_<base64>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a Standard Webhooks secret is whsec_ followed by base64")]
pub struct InvalidSecret;

impl StandardWebhooks {
    /// Verifies with any of `secrets`, each `whsec_<base64>` (the prefix
    /// optional), within [`DEFAULT_TOLERANCE`].
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Result<Self, InvalidSecret> {
        let keys = secrets
            .into_iter()
            .map(|secret| {
                let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
                STANDARD.decode(encoded).map_err(|_| InvalidSecret)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            secrets: Secrets::new(keys.iter().map(Vec::as_slice)),
            tolerance: DEFAULT_TOLERANCE,
        })
    }

    /// Accepts timestamps at most `tolerance` from now.
    #[must_use]
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }
}

impl WebhookScheme for StandardWebhooks {
    fn tolerance(&self) -> Duration {
        self.tolerance
    }

    fn verify(&self, headers: &HeaderMap, body: &[u8], now: u64) -> Result<Delivery, WebhookError> {
        const SIGNATURE: &str = "webhook-signature";
        const TIMESTAMP: &str = "webhook-timestamp";
        let id = text(headers, "webhook-id")?;
        let ts_text = text(headers, TIMESTAMP)?;
        let ts = timestamp(ts_text, TIMESTAMP, now, self.tolerance)?;
        let mut tags = Vec::new();
        for item in text(headers, SIGNATURE)?.split(' ') {
            if let Some(("v1", encoded)) = item.split_once(',') {
                match STANDARD.decode(encoded) {
                    Ok(tag) if tag.len() == TAG_LEN && tags.len() < MAX_TAGS => tags.push(tag),
                    _ => return Err(WebhookError::Malformed(SIGNATURE)),
                }
            }
        }
        if tags.is_empty() {
            return Err(WebhookError::Malformed(SIGNATURE));
        }
        let prefix = format!("{id}.{ts_text}.");
        let _matched = self
            .secrets
            .matching(prefix.as_bytes(), body, &tags)
            .ok_or(WebhookError::BadSignature)?;
        Ok(Delivery {
            id: format!("standard:{id}"),
            timestamp: Some(ts),
        })
    }
}

/// A generic HMAC-SHA256 of the body in one header, hex (default) or
/// base64, after an optional prefix (`sha256=`).
#[derive(Clone, Debug)]
pub struct HmacHeader {
    header: HeaderName,
    secrets: Secrets,
    prefix: String,
    base64: bool,
}

impl HmacHeader {
    /// Reads the hex signature from `header`, verifying with any of
    /// `secrets`.
    pub fn new<'a>(header: HeaderName, secrets: impl IntoIterator<Item = &'a [u8]>) -> Self {
        Self {
            header,
            secrets: Secrets::new(secrets),
            prefix: String::new(),
            base64: false,
        }
    }

    /// Strips `prefix` (e.g. `sha256=`) before decoding.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Reads the signature as standard base64 instead of hex.
    #[must_use]
    pub fn base64(mut self) -> Self {
        self.base64 = true;
        self
    }
}

impl WebhookScheme for HmacHeader {
    fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        _now: u64,
    ) -> Result<Delivery, WebhookError> {
        const NAME: &str = "signature";
        let mut values = headers.get_all(&self.header).iter();
        let value = values.next().ok_or(WebhookError::Missing(NAME))?;
        if values.next().is_some() {
            return Err(WebhookError::Malformed(NAME));
        }
        let value = value.to_str().map_err(|_| WebhookError::Malformed(NAME))?;
        let encoded = value
            .strip_prefix(self.prefix.as_str())
            .ok_or(WebhookError::Malformed(NAME))?;
        let tag = if self.base64 {
            match STANDARD.decode(encoded) {
                Ok(tag) if tag.len() == TAG_LEN => tag,
                _ => return Err(WebhookError::Malformed(NAME)),
            }
        } else {
            hex_tag(encoded, NAME)?
        };
        let matched = self
            .secrets
            .matching(b"", body, &[tag])
            .ok_or(WebhookError::BadSignature)?;
        Ok(Delivery {
            id: tag_id("hmac", &matched),
            timestamp: None,
        })
    }
}
