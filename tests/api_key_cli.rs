//! `keystile key mint|list|revoke`, run as a user would, against a real
//! PostgreSQL schema of its own.
#![cfg(feature = "postgres")]

mod api_key_support;
mod support;

use std::process::{Command, Output};
use std::sync::Arc;

use api_key_support::{TestSchema, app, client, serve};
use keystile::api_key::{KeyDigest, parse};
use keystile::clock::{Clock as _, ManualClock, SystemClock};

fn keystile(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keystile"))
        .args(args)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn mint_without_a_database_prints_only_the_key_on_stdout() {
    let out = keystile(&[
        "key",
        "mint",
        "--prefix",
        "sk_live",
        "--owner",
        "acme",
        "--scopes",
        "reports:read",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = stdout(&out).trim_end().to_owned();
    assert!(key.starts_with("sk_live_"));
    assert!(parse(&key).is_ok());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not stored"), "{stderr}");
    assert!(!stderr.contains(&key), "the key is printed once, on stdout");
}

#[test]
fn mint_refuses_bad_prefixes_scopes_and_lifetimes() {
    for args in [
        vec!["--prefix", "SK", "--owner", "a"],
        vec!["--prefix", "sk_", "--owner", "a"],
        vec!["--prefix", "sk", "--owner", "a", "--expires-in", "soon"],
        vec!["--prefix", "sk", "--owner", "a", "--scopes", "a\"b"],
    ] {
        let mut full = vec!["key", "mint"];
        full.extend(args.iter().copied());
        let out = keystile(&full);
        assert!(!out.status.success(), "{args:?}");
        assert!(stdout(&out).is_empty(), "no key printed for {args:?}");
    }
}

#[tokio::test]
async fn mint_list_revoke_against_postgres() {
    let schema = TestSchema::create("apikey_cli").await;
    let url = schema.url();
    let out = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            keystile(&[
                "key",
                "mint",
                "--prefix",
                "sk_live",
                "--name",
                "ci",
                "--owner",
                "acme",
                "--scopes",
                "reports:read,reports:write",
                "--expires-in",
                "30d",
                "--database-url",
                &url,
            ])
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = stdout(&out).trim_end().to_owned();
    let digest = KeyDigest::of(&key);

    // The stored record works through the layer (system time: the CLI
    // stamps records with the real clock).
    let clock = ManualClock::starting_now();
    let store = Arc::new(schema.store(&clock));
    let record = keystile::api_key::ApiKeyStore::lookup(&*store, &digest)
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(record.name, "ci");
    assert_eq!(&*record.owner, "acme");
    assert!(record.expires_at.is_some());
    let base = serve(app(store.clone(), &clock, None)).await;
    let r = client()
        .post(format!("{base}/reports"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let list = tokio::task::spawn_blocking({
        let url = url.clone();
        move || keystile(&["key", "list", "--owner", "acme", "--database-url", &url])
    })
    .await
    .unwrap();
    assert!(list.status.success());
    let listed = stdout(&list);
    assert!(listed.contains(&record.id), "{listed}");
    assert!(listed.contains("active"), "{listed}");
    assert!(!listed.contains(&key), "never the plaintext");
    assert!(!listed.contains(&digest.to_hex()), "never the full digest");
    assert!(listed.contains(&digest.short_hex()));

    let id = record.id.clone();
    let revoke = tokio::task::spawn_blocking({
        let url = url.clone();
        move || keystile(&["key", "revoke", &id, "--database-url", &url])
    })
    .await
    .unwrap();
    assert!(
        revoke.status.success(),
        "{}",
        String::from_utf8_lossy(&revoke.stderr)
    );
    // The CLI stamped the revocation with the system time; move the test
    // clock past it.
    clock.set_unix_millis(SystemClock.unix_millis() + 1_000);
    let r = client()
        .get(format!("{base}/whoami"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let again = tokio::task::spawn_blocking(move || {
        keystile(&["key", "revoke", &record.id, "--database-url", &url])
    })
    .await
    .unwrap();
    assert!(!again.status.success(), "revoking twice is an error");
}
