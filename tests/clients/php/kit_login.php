<?php
// A router for PHP's built-in server, for tests/php_client.rs: GET /?user=NAME signs NAME in
// with the kit's Wson::issueCookies and prints the token.

declare(strict_types=1);

require __DIR__ . '/../../../clients/php/Wson.php';

$token = Wson::issueCookies(getenv('WSON_SECRET'), (string) ($_GET['user'] ?? ''), [
    'digest' => getenv('WSON_DIGEST') ?: 'md5',
    'secure' => true,
    'samesite' => 'Strict',
]);
echo $token;
