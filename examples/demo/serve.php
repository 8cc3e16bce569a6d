<?php
// The demo's web backend, for PHP's built-in server, from the repository's root:
//
//   php -S localhost:8080 examples/demo/serve.php
//
// GET /              signs in the demo user (?user=NAME, default "demo"): sets wson's four
//                    cookies, then serves page.html
// GET /push?msg=TEXT broadcasts TEXT to every connected client through the control socket
// GET /js/           the same on clients/js/wson.js (clients/js/demo.html): sets the cookies,
//                    serves the page; GET /js/wson.js serves the helper
// POST /js/renew     sets fresh cookies for the signed-in user (the helper's renew callback)
//
// Where wson is: WSON_SECRET_FILE and WSON_CONTROL in the environment, by default the files
// `cargo run --release -- start` uses (conf/secret, conf/control.sock).

require __DIR__ . '/wson.php';

$root = dirname(__DIR__, 2);
$secret_file = getenv('WSON_SECRET_FILE') ?: "$root/conf/secret";
$control_endpoint = getenv('WSON_CONTROL') ?: "unix://$root/conf/control.sock";

$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
header('Cache-Control: no-store');

if ($path === '/') {
    $secret = @file_get_contents($secret_file);
    if ($secret === false) {
        http_response_code(500);
        header('Content-Type: text/plain; charset=utf-8');
        exit("cannot read $secret_file: start wson first (it creates the secret file)\n");
    }
    $user = $_GET['user'] ?? 'demo';
    wson_login(rtrim($secret), $user);
    header('Content-Type: text/html; charset=utf-8');
    readfile(__DIR__ . '/page.html');
} elseif ($path === '/js/' || $path === '/js/renew') {
    $secret = @file_get_contents($secret_file);
    if ($secret === false) {
        http_response_code(503);
        header('Content-Type: text/plain; charset=utf-8');
        exit("cannot read $secret_file: start wson first (it creates the secret file)\n");
    }
    // A real backend takes the user from its own session; the demo from ?user= or the
    // user cookie of the cookies being renewed.
    $user = $_GET['user'] ?? (isset($_COOKIE['user']) ? (string) $_COOKIE['user'] : 'demo');
    wson_login(rtrim($secret), $user);
    if ($path === '/js/renew') {
        http_response_code(204);
        exit;
    }
    header('Content-Type: text/html; charset=utf-8');
    readfile("$root/clients/js/demo.html");
} elseif ($path === '/js/wson.js') {
    header('Content-Type: text/javascript; charset=utf-8');
    readfile("$root/clients/js/wson.js");
} elseif ($path === '/push') {
    header('Content-Type: text/plain; charset=utf-8');
    $msg = (string) ($_GET['msg'] ?? '');
    $control = wson_connect($control_endpoint);
    if ($msg === '' || $control === false) {
        http_response_code($msg === '' ? 400 : 503);
        exit($msg === '' ? "no msg\n" : "wson is not reachable at $control_endpoint\n");
    }
    fwrite($control, strlen($msg) . 'b' . $msg);   // broadcast, no reply
    fwrite($control, '0q');
    fclose($control);
    echo "pushed\n";
} else {
    http_response_code(404);
    header('Content-Type: text/plain; charset=utf-8');
    echo "not found\n";
}
