//! [`PostgresApiKeyStore`]: API key records in PostgreSQL (feature
//! `postgres`).
//!
//! What you rely on:
//!
//! - One table, `keystile_api_keys`, created by the migrations shipped in
//!   this crate ([`migrator`]); run them with [`PostgresApiKeyStore::migrate`].
//!   They go into the first schema on the connection's `search_path`.
//! - keystile records its migrations in a table of its own,
//!   [`MIGRATIONS_TABLE`], never in sqlx's `_sqlx_migrations`: an
//!   application's own `sqlx::migrate!()` set and keystile's run against one
//!   database in either order, and neither sees the other's versions as
//!   missing.
//! - The digest column (32 raw bytes) is the unique index every lookup uses.
//!   Expired and revoked keys are filtered out in SQL against the injected
//!   clock, so they look exactly like unknown keys.
//! - Every call is bounded by [`timeout`](PostgresApiKeyStore::timeout)
//!   (default 5 s); a database that is down or slow is a
//!   [`StoreError`], which the `ApiKeyLayer` answers with 503 (fail closed).
//!   Use a pool with a short `acquire_timeout` so an unreachable server fails
//!   fast ([`PostgresApiKeyStore::connect`] sets 3 s).
//! - Last-used times arrive in batches from
//!   [`LastUsedRecorder`](super::LastUsedRecorder): one `UPDATE` per flush.
//! - Put a [`CachedApiKeyStore`](super::CachedApiKeyStore) in front to take
//!   the database off the hot path, with a stated revocation bound.
//!
//! ```no_run
//! use keystile_core::api_key::{CachedApiKeyStore, PostgresApiKeyStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = PostgresApiKeyStore::connect("postgres://app@db/app").await?;
//! store.migrate().await?;
//! let store = CachedApiKeyStore::new(store); // revoked keys die within 30 s
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{Row as _, migrate::Migrator};

use super::digest::KeyDigest;
use super::record::ApiKeyRecord;
use super::store::{ApiKeyAdmin, ApiKeyStore, CreateError, LastUse};
use crate::clock::{SharedClock, SystemClock};
use crate::scopes::Scopes;
use crate::store::StoreError;

/// The table keystile's migrations are recorded in (in the first schema of
/// the connection's `search_path`).
pub const MIGRATIONS_TABLE: &str = "_keystile_migrations";

/// The shipped migration files, as sqlx embeds them.
static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// The migrations that create keystile's API key table, recorded in
/// [`MIGRATIONS_TABLE`] so they coexist with the application's own sqlx
/// migrations. [`PostgresApiKeyStore::migrate`] runs them.
///
/// Upgrading from a keystile that recorded its migration in
/// `_sqlx_migrations`: run this once (it re-applies nothing, every
/// statement is `IF NOT EXISTS`), then remove keystile's row from the
/// application's table: `DELETE FROM _sqlx_migrations WHERE version =
/// 20250601000000`.
pub fn migrator() -> Migrator {
    let mut migrator = Migrator::with_migrations(MIGRATIONS.iter().cloned().collect());
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator
}

/// Default bound on every store call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The record's columns, as a literal so queries are built at compile time.
macro_rules! columns {
    () => {
        "id, name, prefix, digest, owner, scopes, created_at, expires_at, revoked_at, \
         last_used_at"
    };
}

// Expired and revoked keys are filtered here, against the injected clock ($2),
// so they are indistinguishable from unknown ones.
const LOOKUP_SQL: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM keystile_api_keys WHERE digest = $1 \
     AND (expires_at IS NULL OR expires_at > $2) \
     AND (revoked_at IS NULL OR revoked_at > $2)"
);

const LIST_SQL: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM keystile_api_keys WHERE owner = $1 ORDER BY created_at, id"
);

/// API key records in PostgreSQL.
#[derive(Clone)]
pub struct PostgresApiKeyStore {
    pool: PgPool,
    clock: SharedClock,
    timeout: Duration,
}

impl PostgresApiKeyStore {
    /// A store over an existing pool.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            clock: SystemClock::shared(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Connects a small pool to `url` (3 s acquire timeout). Fails when the
    /// URL is invalid or the server cannot be reached.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(3))
            .connect(url)
            .await
            .map_err(store_error)?;
        Ok(Self::new(pool))
    }

    /// Uses `clock` to decide expiry and revocation in lookups.
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Bounds every call (default 5 s); an overrun is
    /// [`StoreError::Timeout`].
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs the shipped migrations ([`migrator`]; idempotent).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrator()
            .run(&self.pool)
            .await
            .map_err(StoreError::backend)
    }

    async fn bounded<T>(
        &self,
        work: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, work).await {
            Ok(result) => result.map_err(store_error),
            Err(_) => Err(StoreError::Timeout),
        }
    }

    fn now(&self) -> i64 {
        to_db(self.clock.unix_seconds())
    }
}

impl fmt::Debug for PostgresApiKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresApiKeyStore")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn store_error(error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::PoolTimedOut => StoreError::Timeout,
        other => StoreError::backend(other),
    }
}

/// Unix seconds as PostgreSQL BIGINT; far-future times saturate.
fn to_db(seconds: u64) -> i64 {
    i64::try_from(seconds).unwrap_or(i64::MAX)
}

fn from_db(seconds: i64) -> u64 {
    u64::try_from(seconds).unwrap_or(0)
}

fn record_from(row: &PgRow) -> Result<ApiKeyRecord, sqlx::Error> {
    let digest: Vec<u8> = row.try_get("digest")?;
    let digest: [u8; 32] = digest
        .try_into()
        .map_err(|_| sqlx::Error::Decode("keystile_api_keys.digest is not 32 bytes".into()))?;
    let scopes: Vec<String> = row.try_get("scopes")?;
    Ok(ApiKeyRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        digest: KeyDigest(digest),
        owner: row.try_get::<String, _>("owner")?.into(),
        scopes: scopes.into_iter().collect::<Scopes>(),
        created_at: from_db(row.try_get("created_at")?),
        expires_at: row.try_get::<Option<i64>, _>("expires_at")?.map(from_db),
        revoked_at: row.try_get::<Option<i64>, _>("revoked_at")?.map(from_db),
        last_used_at: row.try_get::<Option<i64>, _>("last_used_at")?.map(from_db),
    })
}

#[async_trait]
impl ApiKeyStore for PostgresApiKeyStore {
    async fn lookup(&self, digest: &KeyDigest) -> Result<Option<Arc<ApiKeyRecord>>, StoreError> {
        let row = self
            .bounded(
                sqlx::query(LOOKUP_SQL)
                    .bind(&digest.0[..])
                    .bind(self.now())
                    .fetch_optional(&self.pool),
            )
            .await?;
        row.map(|row| record_from(&row).map(Arc::new))
            .transpose()
            .map_err(StoreError::backend)
    }
}

#[async_trait]
impl ApiKeyAdmin for PostgresApiKeyStore {
    async fn create(&self, record: ApiKeyRecord) -> Result<(), CreateError> {
        let scopes: Vec<&str> = record.scopes.iter().collect();
        let insert = sqlx::query(
            "INSERT INTO keystile_api_keys \
             (id, name, prefix, digest, owner, scopes, created_at, expires_at, revoked_at, \
              last_used_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&record.id)
        .bind(&record.name)
        .bind(&record.prefix)
        .bind(&record.digest.0[..])
        .bind(&*record.owner)
        .bind(&scopes)
        .bind(to_db(record.created_at))
        .bind(record.expires_at.map(to_db))
        .bind(record.revoked_at.map(to_db))
        .bind(record.last_used_at.map(to_db))
        .execute(&self.pool);
        match tokio::time::timeout(self.timeout, insert).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(sqlx::Error::Database(e))) if e.is_unique_violation() => {
                Err(CreateError::Duplicate)
            }
            Ok(Err(e)) => Err(store_error(e).into()),
            Err(_) => Err(StoreError::Timeout.into()),
        }
    }

    async fn revoke(&self, id: &str, at: u64) -> Result<bool, StoreError> {
        let done = self
            .bounded(
                sqlx::query(
                    "UPDATE keystile_api_keys SET revoked_at = $2 \
                     WHERE id = $1 AND revoked_at IS NULL",
                )
                .bind(id)
                .bind(to_db(at))
                .execute(&self.pool),
            )
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn list(&self, owner: &str) -> Result<Vec<Arc<ApiKeyRecord>>, StoreError> {
        let rows = self
            .bounded(sqlx::query(LIST_SQL).bind(owner).fetch_all(&self.pool))
            .await?;
        rows.iter()
            .map(|row| record_from(row).map(Arc::new))
            .collect::<Result<_, _>>()
            .map_err(StoreError::backend)
    }

    async fn record_use(&self, uses: &[LastUse]) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        let digests: Vec<&[u8]> = uses.iter().map(|u| &u.digest.0[..]).collect();
        let times: Vec<i64> = uses.iter().map(|u| to_db(u.at)).collect();
        self.bounded(
            sqlx::query(
                "UPDATE keystile_api_keys AS k \
                 SET last_used_at = GREATEST(COALESCE(k.last_used_at, 0), u.at) \
                 FROM UNNEST($1::bytea[], $2::bigint[]) AS u(digest, at) \
                 WHERE k.digest = u.digest",
            )
            .bind(&digests)
            .bind(&times)
            .execute(&self.pool),
        )
        .await?;
        Ok(())
    }
}
