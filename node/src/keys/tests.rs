#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use sietch_market::Address;

use super::password::password_from;
use super::*;

const PW: &str = "correct horse battery";

fn pw() -> Password {
    Password::new(PW.into())
}

fn hex_of(s: &PrivateKeySigner) -> String {
    hex::encode(s.to_bytes())
}

/// No error text holds the key or the password.
fn clean(e: &KeyError, s: &PrivateKeySigner) -> String {
    let text = format!("{e} {e:?}");
    assert!(!text.contains(&hex_of(s)), "the key leaked: {text}");
    assert!(!text.contains(PW), "the password leaked: {text}");
    text
}

fn with_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn a_keystore_reads_back_with_its_password_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ks/node.json");
    let signer = PrivateKeySigner::random();
    create_keystore(&path, &signer, &pw()).unwrap();

    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(&hex_of(&signer)), "{text}");
    assert!(
        text.contains("\"scrypt\"") && text.contains("\"version\":3"),
        "{text}"
    );
    assert_eq!(keystore_address(&path).unwrap(), Some(signer.address()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        let dmode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dmode & 0o777, 0o700, "{dmode:o}");
    }
    // No scratch directory left beside it.
    assert_eq!(
        std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
        1
    );

    let opened = open_keystore(&path, &pw(), &PasswordSource::Env).unwrap();
    assert_eq!(opened.address(), signer.address());

    let e = open_keystore(&path, &Password::new("wrong".into()), &PasswordSource::Env).unwrap_err();
    assert!(matches!(e, KeyError::WrongPassword { .. }), "{e:?}");
    let t = clean(&e, &signer);
    assert!(
        t.contains("wrong password") && t.contains("SIETCH_KEYSTORE_PASSWORD"),
        "{t}"
    );

    // Never over an existing file.
    let e = create_keystore(&path, &signer, &pw()).unwrap_err();
    assert!(matches!(e, KeyError::Exists { .. }), "{e:?}");
}

#[test]
fn malformed_keystores_are_named_before_any_password_is_tried() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.json");
    let signer = PrivateKeySigner::random();
    create_keystore(&path, &signer, &pw()).unwrap();
    let good: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();

    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let edits: Vec<(&str, Edit)> = vec![
        ("version", Box::new(|j| j["version"] = 1.into())),
        (
            "IV",
            Box::new(|j| j["crypto"]["cipherparams"]["iv"] = "00".into()),
        ),
        (
            "ciphertext",
            Box::new(|j| j["crypto"]["ciphertext"] = "0011".into()),
        ),
        (
            "MiB",
            Box::new(|j| j["crypto"]["kdfparams"]["n"] = (1u64 << 30).into()),
        ),
        (
            "power of two",
            Box::new(|j| j["crypto"]["kdfparams"]["n"] = 1000.into()),
        ),
        (
            "dklen",
            Box::new(|j| j["crypto"]["kdfparams"]["dklen"] = 16.into()),
        ),
        (
            "cipher",
            Box::new(|j| j["crypto"]["cipher"] = "aes-256-gcm".into()),
        ),
        (
            "disagree",
            Box::new(|j| j["crypto"]["kdf"] = "pbkdf2".into()),
        ),
        (
            "missing field",
            Box::new(|j| {
                j.as_object_mut().unwrap().remove("crypto");
            }),
        ),
        ("address field", Box::new(|j| j["address"] = "nope".into())),
    ];
    for (want, edit) in edits {
        let mut j = good.clone();
        edit(&mut j);
        let p = with_file(dir.path(), "bad.json", &j.to_string());
        let e = open_keystore(&p, &pw(), &PasswordSource::Env).unwrap_err();
        assert!(
            matches!(e, KeyError::MalformedKeystore { .. }),
            "{want}: {e:?}"
        );
        let t = clean(&e, &signer);
        assert!(t.contains(want), "{want}: {t}");
    }
    // Another account's address: the file was tampered with.
    let mut j = good.clone();
    j["address"] = hex::encode(Address::repeat_byte(7)).into();
    let p = with_file(dir.path(), "bad.json", &j.to_string());
    let e = open_keystore(&p, &pw(), &PasswordSource::Env).unwrap_err();
    assert!(clean(&e, &signer).contains("address field says"), "{e}");

    // Not JSON at all (a raw key given as a keystore): named, and not echoed.
    let p = with_file(dir.path(), "raw.json", &format!("0x{}\n", hex_of(&signer)));
    let e = open_keystore(&p, &pw(), &PasswordSource::Env).unwrap_err();
    assert!(clean(&e, &signer).contains("not JSON"), "{e}");
    // A JSON string value is never quoted back.
    let p = with_file(
        dir.path(),
        "str.json",
        &format!("{{\"version\": \"{}\"}}", hex_of(&signer)),
    );
    let e = open_keystore(&p, &pw(), &PasswordSource::Env).unwrap_err();
    clean(&e, &signer);

    let e = open_keystore(&dir.path().join("none.json"), &pw(), &PasswordSource::Env).unwrap_err();
    assert!(matches!(e, KeyError::MissingKeystore { .. }), "{e:?}");
    assert!(e.to_string().contains("sietch init"), "{e}");
}

#[test]
fn passwords_come_from_the_file_then_the_environment_then_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let ks = dir.path().join("node.json");
    let file = with_file(dir.path(), "pw", "from the file\nsecond line\n");
    let with_file_cfg = KeysConfig {
        password_file: Some(file.clone()),
        ..KeysConfig::default()
    };
    let env = || Some(std::ffi::OsString::from("from the environment"));

    let (p, from) = password_from(&with_file_cfg, &ks, PasswordUse::Unlock, env(), true).unwrap();
    assert_eq!(p.bytes(), b"from the file");
    assert_eq!(from, PasswordSource::File(file.clone()));

    let none = KeysConfig::default();
    let (p, from) = password_from(&none, &ks, PasswordUse::Unlock, env(), true).unwrap();
    assert_eq!(p.bytes(), b"from the environment");
    assert_eq!(from, PasswordSource::Env);

    // No source and no terminal: a clear error naming every way to give one.
    let e = password_from(&none, &ks, PasswordUse::Unlock, None, false).unwrap_err();
    let t = e.to_string();
    assert!(
        t.contains("password_file") && t.contains(PASSWORD_ENV) && t.contains("terminal"),
        "{t}"
    );

    let e = password_from(&none, &ks, PasswordUse::Unlock, Some("".into()), false).unwrap_err();
    assert!(e.to_string().contains("empty"), "{e}");
    let e = password_from(&none, &ks, PasswordUse::New, Some("abc12".into()), false).unwrap_err();
    assert!(matches!(e, KeyError::WeakPassword { .. }), "{e:?}");
    assert!(!e.to_string().contains("abc12"), "{e}");

    let missing = KeysConfig {
        password_file: Some(dir.path().join("absent")),
        ..KeysConfig::default()
    };
    let e = password_from(&missing, &ks, PasswordUse::Unlock, env(), true).unwrap_err();
    assert!(matches!(e, KeyError::PasswordFile { .. }), "{e:?}");

    assert_eq!(format!("{:?}", pw()), "Password(<secret>)");
}

#[cfg(unix)]
#[test]
fn a_password_file_others_can_read_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = with_file(dir.path(), "pw", PW);
    let cfg = KeysConfig {
        password_file: Some(file.clone()),
        ..KeysConfig::default()
    };
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let w = password_file_warning(&cfg).unwrap();
    assert!(w.contains("chmod 600") && w.contains("644"), "{w}");
    assert!(!w.contains(PW), "{w}");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(password_file_warning(&cfg), None);
    assert_eq!(password_file_warning(&KeysConfig::default()), None);
}

#[test]
fn raw_key_files_hold_one_key_and_are_never_quoted() {
    let dir = tempfile::tempdir().unwrap();
    let signer = PrivateKeySigner::random();
    for text in [
        format!("0x{}\n", hex_of(&signer)),
        format!("  {}  ", hex_of(&signer)),
    ] {
        let p = with_file(dir.path(), "k", &text);
        assert_eq!(read_raw_key(&p).unwrap().address(), signer.address());
    }
    let short = &hex_of(&signer)[..60];
    for (text, want) in [
        (short.to_owned(), "64 hex digits"),
        (format!("{}zz", &hex_of(&signer)[..62]), "not hex"),
        (
            format!("{} {}", hex_of(&signer), hex_of(&signer)),
            "64 hex digits",
        ),
    ] {
        let p = with_file(dir.path(), "k", &text);
        let e = read_raw_key(&p).unwrap_err();
        let t = clean(&e, &signer);
        assert!(t.contains(want), "{t}");
        assert!(!t.contains(short), "{t}");
    }
    let p = with_file(dir.path(), "k", &"0".repeat(64));
    assert!(matches!(
        read_raw_key(&p).unwrap_err(),
        KeyError::InvalidKey { .. }
    ));

    // Export: the same key back, 0600, never over a file.
    let out = dir.path().join("exported");
    export_raw_key(&signer, &out).unwrap();
    assert_eq!(read_raw_key(&out).unwrap().address(), signer.address());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    assert!(matches!(
        export_raw_key(&signer, &out).unwrap_err(),
        KeyError::Exists { .. }
    ));
}

#[test]
fn the_node_loads_the_keystore_else_the_stored_key_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let file = with_file(data, "pw", PW);
    let cfg = KeysConfig {
        password_file: Some(file),
        ..KeysConfig::default()
    };
    let stored = PrivateKeySigner::random();
    let stored_key = stored.to_bytes();

    // Only the stored key: it is used, and the origin warns how to encrypt it.
    let (s, origin) = load(data, &cfg, Some(&stored_key)).unwrap();
    assert_eq!(s.address(), stored.address());
    assert_eq!(origin, KeyOrigin::Store);
    let w = origin.warning(data).unwrap();
    assert!(
        w.contains("not encrypted") && w.contains("sietch key encrypt"),
        "{w}"
    );

    // A keystore set elsewhere and missing: an error, not the stored key.
    let elsewhere = KeysConfig {
        keystore: data.join("elsewhere.json"),
        ..cfg.clone()
    };
    let e = load(data, &elsewhere, Some(&stored_key)).unwrap_err();
    assert!(matches!(e, KeyError::MissingKeystore { .. }), "{e:?}");
    // Nothing at all.
    let e = load(data, &cfg, None).unwrap_err();
    assert!(matches!(e, KeyError::MissingKeystore { .. }), "{e:?}");

    // Migration: the stored key into the keystore; then the keystore is what loads.
    let moved = encrypt_stored_key(data, &cfg, &stored_key).unwrap();
    assert_eq!(moved.address(), stored.address());
    let (s, origin) = load(data, &cfg, None).unwrap();
    assert_eq!(s.address(), stored.address());
    assert!(origin.warning(data).is_none());
    // With the stored copy still there: loads, and says to remove it.
    let (_, origin) = load(data, &cfg, Some(&stored_key)).unwrap();
    assert!(origin.warning(data).unwrap().contains("also unencrypted"));
    // Another key in the store: a conflict, named with both accounts.
    let other = PrivateKeySigner::random();
    let e = load(data, &cfg, Some(&other.to_bytes())).unwrap_err();
    let t = clean(&e, &other);
    assert!(t.contains(&other.address().to_string()), "{t}");

    // A wrong password from the file: the typed error.
    let wrong = KeysConfig {
        password_file: Some(with_file(data, "pw2", "not the password")),
        ..KeysConfig::default()
    };
    let e = load(data, &wrong, None).unwrap_err();
    assert!(matches!(e, KeyError::WrongPassword { .. }), "{e:?}");
    assert!(e.to_string().contains("pw2"), "{e}");
}
