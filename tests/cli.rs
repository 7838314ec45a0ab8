//! The `keystile` binary, run as a user would.

use std::process::Command;

use keystile::keys::{Keyring, SECRET_VAR};

fn keystile() -> Command {
    Command::new(env!("CARGO_BIN_EXE_keystile"))
}

#[test]
fn secret_generate_prints_a_secret_keystile_accepts() {
    let out = keystile().args(["secret", "generate"]).output().unwrap();
    assert!(out.status.success());
    let secret = String::from_utf8(out.stdout).unwrap();
    let secret = secret.trim_end().to_owned();
    assert_eq!(secret.len(), 43);
    let ring = Keyring::from_vars(|name| (name == SECRET_VAR).then(|| secret.clone())).unwrap();
    assert_eq!(ring.len(), 1);

    let again = keystile().args(["secret", "generate"]).output().unwrap();
    assert_ne!(String::from_utf8(again.stdout).unwrap().trim_end(), secret);
}

#[test]
fn unknown_subcommand_fails_with_usage() {
    let out = keystile().args(["secret", "nope"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage"));
}
