<?php
// A connect authorizer checking the application's own PHP session, as Stork does:
// php authorizer.php CONTROL_ADDRESS
// Registers (z), makes sure wson took it in (a 0p round trip), says "ready", then answers
// each request: the session "good-session" is alice's, joining the topic "news"; any other
// is refused with 403 "unknown session". Prints each request with its decision.

require __DIR__.'/wson.php';

$sessions = ['good-session' => 'alice'];

[, $address] = $argv;
$control = wson_connect($address);

wson_write($control, '0z0p');
while (($frame = wson_read($control)) !== null && $frame[0] !== 'P') {
}
say(['event' => 'ready']);

while (($frame = wson_read($control)) !== null) {
    [$command, $payload] = $frame;
    if ($command === 'p') {
        wson_write($control, '0P');
        continue;
    }
    if ($command !== 'z') {
        continue;
    }
    [$id, $listener, $remote, $origin, $path, $query, $cookie, $token, $user] =
        wson_parse_fields($payload);
    $session = null;
    foreach (explode('; ', $cookie) as $pair) {
        [$name, $value] = array_pad(explode('=', $pair, 2), 2, '');
        if ($name === 'PHPSESSID') {
            $session = $value;
        }
    }
    $line = ['id' => $id, 'listener' => $listener, 'remote' => $remote, 'origin' => $origin,
        'path' => $path, 'query' => $query, 'cookie' => $cookie, 'token' => $token,
        'user' => $user];
    if ($session !== null && isset($sessions[$session])) {
        wson_send($control, 'Z', $id, 'allow', $sessions[$session], 'news');
        $line['decision'] = 'allow';
    } else {
        wson_send($control, 'Z', $id, 'deny', '403', 'unknown session');
        $line['decision'] = 'deny';
    }
    say($line);
}
