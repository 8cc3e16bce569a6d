<?php
// One Wson object across a restart of wson, for tests/php_client.rs. Args: control address,
// a folder where the test creates `stopped` and then `started`. Prints one JSON line per step.

declare(strict_types=1);

require __DIR__ . '/../../../clients/php/Wson.php';

[, $address, $folder] = $argv;

function say(string $step, mixed $value): void
{
    echo json_encode(['step' => $step, 'value' => $value]), "\n";
}

function await_file(string $path): void
{
    for ($i = 0; $i < 1500 && !file_exists($path); $i++) {
        usleep(10000);
    }
}

$wson = new Wson($address, 1.0, 5.0);
$wson->ping();
say('before', $wson->online('alice'));
await_file("$folder/stopped");
try {
    $wson->ping();
    say('while stopped', null);
} catch (WsonConnectionException $e) {
    say('while stopped', get_class($e));
}
await_file("$folder/started");
say('after', $wson->sendToUserConfirmed('alice', 'after the restart'));
