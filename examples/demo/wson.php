<?php
// wson.php: what a PHP backend needs to talk to wson (README.md, "A quick tour", 4).

/**
 * Signs a new token for $user and sets the four cookies wson checks; returns the token, to
 * keep (in the session) for pushing to this browser later. Call it before any output: the
 * cookies are headers. $secret: the content of conf/wson.toml's secret_file, trimmed.
 */
function wson_login(string $secret, string $user): string
{
    // 32 characters of [0-9A-Za-z_-]: 24 random bytes in URL-safe base64.
    $token = rtrim(strtr(base64_encode(random_bytes(24)), '+/', '-_'), '=');
    $time = (string) time();
    // digest = "md5" (the default): md5 over secret, user, token and time, as ws(s)on did.
    $digest = md5($secret . $user . $token . $time);
    // digest = "hmac-sha256", the stronger choice:
    // $digest = hash_hmac('sha256', "$token:$time:$user", $secret);
    $cookies = [
        'token' => $token,
        // wson percent-decodes the user cookie (%XX only): a space must be %20, never '+'.
        'user' => rawurlencode($user),
        'time' => $time,
        'digest' => $digest,
    ];
    foreach ($cookies as $name => $value) {
        setrawcookie($name, $value, ['path' => '/', 'httponly' => true, 'samesite' => 'Lax']);
    }
    return $token;
}

/**
 * A connection to wson's control socket ('unix:///path/control.sock' or 'tcp://host:port'),
 * or false, logged, when wson cannot be reached.
 */
function wson_connect(string $endpoint)
{
    $control = @stream_socket_client($endpoint, $errno, $errstr, 1.0);
    if ($control === false) {
        error_log("wson: cannot connect to $endpoint: $errstr (errno $errno)");
        return false;
    }
    return $control;
}
