//! `keystile handoff mint`, run as a user would.

use std::process::Command;

use keystile::handoff::HandoffCodec;
use keystile::keys::{Keyring, SECRET_VAR};

fn keystile() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keystile"));
    command
        .env_remove(SECRET_VAR)
        .env_remove("KEYSTILE_SECRET_FALLBACKS");
    command
}

fn secret() -> String {
    let out = keystile().args(["secret", "generate"]).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim_end().to_owned()
}

#[test]
fn mint_prints_a_redirect_url_the_tenant_accepts() {
    let secret = secret();
    let out = keystile()
        .env(SECRET_VAR, &secret)
        .args([
            "handoff", "mint", "--sub", "7", "--aud", "acme", "--act", "op:7",
        ])
        .args(["--ttl", "60", "--url", "http://acme.localhost:3000"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = String::from_utf8(out.stdout).unwrap();
    let token = url
        .trim_end()
        .strip_prefix("http://acme.localhost:3000/_keystile/handoff?token=")
        .expect("the tenant's handoff URL");
    let keyring = Keyring::from_vars(|name| (name == SECRET_VAR).then(|| secret.clone())).unwrap();
    let verified = HandoffCodec::new(keyring).verify(token, "acme").unwrap();
    assert_eq!(verified.claims.subject, "7");
    assert_eq!(verified.claims.actor.as_deref(), Some("op:7"));
    assert_eq!(verified.expires_at - verified.issued_at, 60);
}

#[test]
fn mint_refuses_long_ttls_bad_urls_and_a_missing_secret() {
    let secret = secret();
    let mint = |args: &[&str], with_secret: bool| {
        let mut command = keystile();
        if with_secret {
            command.env(SECRET_VAR, &secret);
        }
        let out = command
            .args(["handoff", "mint", "--sub", "7", "--aud", "acme"])
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(out.stdout.is_empty(), "nothing printed on failure");
        String::from_utf8(out.stderr).unwrap()
    };
    let ok_url = ["--url", "http://acme.localhost:3000"];
    assert!(mint(&["--ttl", "601", ok_url[0], ok_url[1]], true).contains("TTL"));
    assert!(mint(&["--url", "http://evil.test@acme.localhost"], true).contains("tenant URL"));
    assert!(mint(&["--url", "http://acme_x.localhost"], true).contains("DNS name"));
    assert!(mint(&["--url", "http://acme.localhost:70000"], true).contains("port"));
    assert!(mint(&ok_url, false).contains("KEYSTILE_SECRET"));
}
