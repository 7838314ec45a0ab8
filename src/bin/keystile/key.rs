//! `keystile key mint|list|revoke`: API keys from the command line.
//!
//! `mint` prints the plaintext key once on stdout (nothing else goes to
//! stdout, so scripts can capture it) and the record's details on stderr;
//! with `--database-url` (or `DATABASE_URL`) it also runs the migrations and
//! stores the record. `list` never prints a plaintext key or a full digest.

use std::time::Duration;

use clap::{Args, Subcommand};
use keystile::api_key::{ApiKeyRecord, KeyPrefix, NewApiKey};
use keystile::clock::{Clock as _, SystemClock};
use keystile::random::OsRandom;
use keystile::scopes::Scopes;

/// API key commands.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Mint a key: prints it ONCE; stores the record when given a database.
    Mint(MintArgs),
    /// List an owner's keys (never prints keys or full digests).
    List(ListArgs),
    /// Revoke a key by id.
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub struct MintArgs {
    /// Readable prefix: 1-16 of a-z 0-9 _, not starting or ending with _.
    #[arg(long, value_parser = parse_prefix)]
    prefix: KeyPrefix,
    /// Who owns the key (the subject requests act as).
    #[arg(long)]
    owner: String,
    /// Human-readable name, e.g. "ci".
    #[arg(long, default_value = "")]
    name: String,
    /// Scopes, comma- or space-separated (`*` grants all).
    #[arg(long, default_value = "", value_parser = parse_scopes)]
    scopes: Scopes,
    /// Lifetime, e.g. 3600s, 90m, 12h, 30d, 2w.
    #[arg(long, value_parser = parse_lifetime)]
    expires_in: Option<Duration>,
    /// PostgreSQL URL; when given, the record is stored there.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Whose keys to list.
    #[arg(long)]
    owner: String,
    /// PostgreSQL URL.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The key's id (from `mint` or `list`).
    id: String,
    /// PostgreSQL URL.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
}

/// Runs a `key` subcommand.
pub fn run(command: KeyCommand) -> Result<(), String> {
    match command {
        KeyCommand::Mint(args) => mint(args),
        KeyCommand::List(args) => list(args),
        KeyCommand::Revoke(args) => revoke(args),
    }
}

fn mint(args: MintArgs) -> Result<(), String> {
    let now = SystemClock.unix_seconds();
    let mut new = NewApiKey::new(args.prefix, args.owner)
        .with_name(args.name)
        .with_scopes(args.scopes);
    if let Some(lifetime) = args.expires_in {
        let at = now
            .checked_add(lifetime.as_secs())
            .ok_or("--expires-in is too far in the future")?;
        new = new.expires_at(at);
    }
    let (key, record) = new.mint(&OsRandom, now).map_err(|e| e.to_string())?;
    match &args.database_url {
        Some(url) => {
            database::store(url, record.clone())?;
            eprintln!("stored key {} in the database", record.id);
        }
        None => eprintln!(
            "not stored (no --database-url); sha256 of the key: {}",
            record.digest.to_hex()
        ),
    }
    eprintln!("{}", describe(&record));
    eprintln!("the key is shown once; keep it secret:");
    println!("{}", key.as_str());
    Ok(())
}

fn list(args: ListArgs) -> Result<(), String> {
    let records = database::list(&args.database_url, &args.owner)?;
    let now = SystemClock.unix_seconds();
    println!(
        "{:<22}  {:<8}  {:<16}  {:<18}  {:<20}  {:<20}  {:<20}  {:<10}  scopes",
        "id", "status", "name", "key", "created", "expires", "last used", "digest"
    );
    for r in &records {
        let status = match (r.revoked_at, r.is_usable_at(now)) {
            (Some(at), false) if at <= now => "revoked",
            (_, false) => "expired",
            _ => "active",
        };
        println!(
            "{:<22}  {:<8}  {:<16}  {:<18}  {:<20}  {:<20}  {:<20}  {:<10}  {}",
            r.id,
            status,
            r.name,
            format!("{}_…", r.prefix),
            utc(Some(r.created_at)),
            utc(r.expires_at),
            utc(r.last_used_at),
            format!("{}…", r.digest.short_hex()),
            r.scopes,
        );
    }
    if records.is_empty() {
        eprintln!("no keys for owner {:?}", args.owner);
    }
    Ok(())
}

fn revoke(args: RevokeArgs) -> Result<(), String> {
    let now = SystemClock.unix_seconds();
    if database::revoke(&args.database_url, &args.id, now)? {
        println!("revoked {}", args.id);
        Ok(())
    } else {
        Err(format!("no unrevoked key with id {:?}", args.id))
    }
}

fn describe(r: &ApiKeyRecord) -> String {
    format!(
        "id {}  prefix {}  owner {}  name {:?}  scopes [{}]  expires {}",
        r.id,
        r.prefix,
        r.owner,
        r.name,
        r.scopes,
        utc(r.expires_at)
    )
}

fn parse_prefix(text: &str) -> Result<KeyPrefix, String> {
    KeyPrefix::new(text).map_err(|e| e.to_string())
}

fn parse_scopes(text: &str) -> Result<Scopes, String> {
    let scopes = Scopes::parse(text);
    // RFC 6749 scope-token characters: they end up in WWW-Authenticate.
    let valid = |s: &str| {
        s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
    };
    if let Some(bad) = scopes.iter().find(|s| !valid(s)) {
        return Err(format!("scope {bad:?} has characters scopes cannot have"));
    }
    Ok(scopes)
}

fn parse_lifetime(text: &str) -> Result<Duration, String> {
    let usage = || format!("{text:?}: expected a number and a unit (s, m, h, d, w), e.g. 30d");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(usage)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| usage())?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(usage()),
    };
    match number.checked_mul(unit) {
        Some(0) => Err(format!("{text:?}: a lifetime must be positive")),
        Some(seconds) => Ok(Duration::from_secs(seconds)),
        None => Err(format!("{text:?}: too long")),
    }
}

/// `YYYY-MM-DD HH:MM:SSZ` in UTC, or `-`.
fn utc(seconds: Option<u64>) -> String {
    let Some(seconds) = seconds else {
        return "-".to_owned();
    };
    let days = seconds / 86_400;
    let rem = seconds % 86_400;
    // Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

#[cfg(feature = "postgres")]
mod database {
    use std::sync::Arc;

    use keystile::api_key::{ApiKeyAdmin, ApiKeyRecord, CreateError, PostgresApiKeyStore};

    fn block_on<T>(work: impl Future<Output = Result<T, String>>) -> Result<T, String> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the runtime: {e}"))?
            .block_on(work)
    }

    async fn connect(url: &str) -> Result<PostgresApiKeyStore, String> {
        let store = PostgresApiKeyStore::connect(url)
            .await
            .map_err(|e| format!("cannot connect to the database: {e}"))?;
        store
            .migrate()
            .await
            .map_err(|e| format!("cannot run the migrations: {e}"))?;
        Ok(store)
    }

    pub fn store(url: &str, record: ApiKeyRecord) -> Result<(), String> {
        block_on(async {
            connect(url)
                .await?
                .create(record)
                .await
                .map_err(|e| match e {
                    CreateError::Duplicate => {
                        "a key with this id or digest exists; mint again".into()
                    }
                    other => format!("cannot store the key: {other}"),
                })
        })
    }

    pub fn list(url: &str, owner: &str) -> Result<Vec<Arc<ApiKeyRecord>>, String> {
        block_on(async {
            connect(url)
                .await?
                .list(owner)
                .await
                .map_err(|e| format!("cannot list keys: {e}"))
        })
    }

    pub fn revoke(url: &str, id: &str, at: u64) -> Result<bool, String> {
        block_on(async {
            connect(url)
                .await?
                .revoke(id, at)
                .await
                .map_err(|e| format!("cannot revoke the key: {e}"))
        })
    }
}

#[cfg(not(feature = "postgres"))]
mod database {
    use std::sync::Arc;

    use keystile::api_key::ApiKeyRecord;

    const UNSUPPORTED: &str = "this keystile was built without the `postgres` feature";

    pub fn store(_: &str, _: ApiKeyRecord) -> Result<(), String> {
        Err(UNSUPPORTED.into())
    }

    pub fn list(_: &str, _: &str) -> Result<Vec<Arc<ApiKeyRecord>>, String> {
        Err(UNSUPPORTED.into())
    }

    pub fn revoke(_: &str, _: &str, _: u64) -> Result<bool, String> {
        Err(UNSUPPORTED.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_parse_with_units() {
        assert_eq!(parse_lifetime("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_lifetime("90m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_lifetime("2w"), Ok(Duration::from_secs(1_209_600)));
        for bad in [
            "",
            "30",
            "d",
            "0d",
            "-1d",
            "1y",
            "1.5h",
            "99999999999999999999w",
        ] {
            assert!(parse_lifetime(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scopes_refuse_quotes_and_backslashes() {
        assert!(parse_scopes("reports:read,reports:write").is_ok());
        assert!(parse_scopes("*").is_ok());
        assert!(parse_scopes("a\"b").is_err());
        assert!(parse_scopes("a\\b").is_err());
    }

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(Some(0)), "1970-01-01 00:00:00Z");
        assert_eq!(utc(Some(951_782_400)), "2000-02-29 00:00:00Z");
        assert_eq!(utc(Some(1_700_000_000)), "2023-11-14 22:13:20Z");
        assert_eq!(utc(None), "-");
    }
}
