<?php
// The kit against a server that accepts and never answers, and one that is not there.
// Prints one JSON line per case, for tests/php_client.rs. Arg: a path that does not exist.

declare(strict_types=1);

require __DIR__ . '/../../../clients/php/Wson.php';

function attempt(string $case, callable $call): void
{
    $started = microtime(true);
    try {
        $call();
        $line = ['case' => $case, 'raised' => null];
    } catch (WsonException $e) {
        $line = ['case' => $case, 'raised' => get_class($e)];
    }
    $line['within_timeout'] = microtime(true) - $started < 3.0;
    echo json_encode($line), "\n";
}

$silent = stream_socket_server('tcp://127.0.0.1:0', $errno, $errstr);
$address = 'tcp://' . stream_socket_get_name($silent, false);
$wson = new Wson($address, 0.5, 0.3);
attempt('reply', fn () => $wson->ping());
attempt('status', fn () => $wson->status());
attempt('no event', fn () => $wson->nextEvent(0.1));
// One connection per command that failed, none retried: ping's, status's, nextEvent's.
$accepted = 0;
while (@stream_socket_accept($silent, 0) !== false) {
    $accepted++;
}
echo json_encode(['connections' => $accepted]), "\n";
attempt('absent', fn () => (new Wson('unix://' . $argv[1], 0.5, 0.3))->ping());
