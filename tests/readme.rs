//! README's PHP, run as written against a real wson.
//!
//! README.md marks its PHP blocks with `<!-- readme-php: NAME -->`: `wson.php` (the two
//! functions, the same file as `examples/demo/wson.php`), `login` and `push`. The tests
//! run them with php-cli, replacing only README's placeholder folder `/path/to/wson/conf/`
//! with the test server's folder and defining the variables the blocks take from their
//! surroundings (`$user`, `$_SESSION`).

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::*;
use crate::php::{self, PhpServer};

const PLACEHOLDER: &str = "/path/to/wson/conf/";

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The ```php block after `<!-- readme-php: NAME -->` in README.md.
pub fn readme_php(name: &str) -> String {
    let readme = fs::read_to_string(repository().join("README.md")).unwrap();
    let marker = format!("<!-- readme-php: {name} -->");
    let at = readme
        .find(&marker)
        .unwrap_or_else(|| panic!("README.md has no {marker}"));
    let rest = &readme[at + marker.len()..];
    let start = rest
        .find("```php\n")
        .expect("a ```php block after the marker")
        + 7;
    let end = rest[start..].find("```").expect("the end of the block") + start;
    rest[start..end].to_string()
}

/// Writes README's blocks into `folder` as runnable scripts, with `conf` (a folder ending in
/// '/') in place of the placeholder: `wson.php`, `login.php` (a router for `php -S` that
/// signs in `?user=` and prints the token) and `push.php TOKEN` (prints `$delivered`).
fn write_scripts(folder: &Path, conf: &str) {
    let block = |name| {
        let text = readme_php(name);
        assert!(
            name == "wson.php" || text.contains(PLACEHOLDER),
            "the {name} block no longer uses {PLACEHOLDER}"
        );
        text.replace(PLACEHOLDER, conf)
    };
    fs::write(folder.join("wson.php"), block("wson.php")).unwrap();
    let prelude = "<?php\nrequire __DIR__ . '/wson.php';\n";
    fs::write(
        folder.join("login.php"),
        format!(
            "{prelude}$user = $_GET['user'];\n$_SESSION = [];\n{}\necho $_SESSION['wson_token'];\n",
            block("login")
        ),
    )
    .unwrap();
    fs::write(
        folder.join("push.php"),
        format!(
            "{prelude}$_SESSION = ['wson_token' => $argv[1]];\n{}\nvar_export($delivered ?? null);\n",
            block("push")
        ),
    )
    .unwrap();
}

#[test]
fn readme_wson_php_is_the_demos_wson_php() {
    let demo = fs::read_to_string(repository().join("examples/demo/wson.php")).unwrap();
    assert_eq!(
        readme_php("wson.php"),
        demo,
        "README.md's wson.php block and examples/demo/wson.php differ"
    );
}

/// A wson whose secret is the file `secret` it creates, as `conf/wson.toml` has it.
fn server_with_secret_file() -> Server {
    Setup::new()
        .unset("secret")
        .set("secret_file", r#""secret""#)
        .start()
}

#[test]
fn readme_php_signs_in_a_user_whose_cookies_open_a_websocket_and_pushes_to_it() {
    if crate::common::php().is_none() {
        return;
    }
    let server = server_with_secret_file();
    let conf = format!("{}/", server.dir.path().display());
    let scripts = tempfile::tempdir().unwrap();
    write_scripts(scripts.path(), &conf);
    let web = PhpServer::start(&scripts.path().join("login.php"), &[]);

    // A user name with a space, a '+' and UTF-8: the cookie must say %20 and %2B.
    let login = php::get(web.port, "/?user=Jos%C3%A9%20%C3%91%2B1");
    assert_eq!(login.status, 200, "{login:?}");
    let token = login.body.trim().to_string();
    assert_eq!(login.cookie("token").as_deref(), Some(token.as_str()));
    assert_eq!(token.len(), 32, "{token:?}");
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{token:?}"
    );
    assert_eq!(
        login.cookie("user").as_deref(),
        Some("Jos%C3%A9%20%C3%91%2B1")
    );

    // What a browser sends back: the four cookies, with an allowed Origin.
    let mut client = WsClient::raw_tcp(&server.tcp());
    client
        .upgrade(&request(
            &server.tcp(),
            &login.cookie_header(),
            Some(ORIGIN),
            "",
        ))
        .unwrap_or_else(|refused| panic!("the cookies were refused: {refused:?}"));

    let push = php::run_script(&scripts.path().join("push.php"), &[&token], &[]);
    let stderr = String::from_utf8_lossy(&push.stderr);
    assert!(push.status.success(), "{push:?}");
    assert_eq!(String::from_utf8_lossy(&push.stdout), "true", "{stderr}");
    // The broadcast, then the confirmed direct message.
    let message = r#"{"event":"invoice-paid","id":42}"#;
    assert_eq!(client.recv_text(), message);
    assert_eq!(client.recv_text(), message);

    // A token nobody holds: the confirmed send says so.
    let push = php::run_script(
        &scripts.path().join("push.php"),
        &["nobody-holds-this-token-0123456_"],
        &[],
    );
    assert_eq!(String::from_utf8_lossy(&push.stdout), "false", "{push:?}");
    assert_eq!(client.recv_text(), message, "the broadcast still goes out");
}

#[test]
fn readme_php_reports_a_control_socket_it_cannot_reach() {
    if crate::common::php().is_none() {
        return;
    }
    let scripts = tempfile::tempdir().unwrap();
    // Nothing listens there.
    let conf = format!("{}/", scripts.path().display());
    write_scripts(scripts.path(), &conf);
    let push = php::run_script(&scripts.path().join("push.php"), &["t"], &[]);
    assert!(push.status.success(), "{push:?}");
    assert_eq!(String::from_utf8_lossy(&push.stdout), "NULL");
    let stderr = String::from_utf8_lossy(&push.stderr);
    let expected = format!(
        "wson: cannot connect to unix://{conf}control.sock: No such file or directory (errno 2)"
    );
    assert_eq!(stderr.trim(), expected);
}
