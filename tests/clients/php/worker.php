<?php
// One worker of a pool consuming what browsers send: php worker.php CONTROL_ADDRESS GROUP
// Listens to `message` events as a member of GROUP (e), makes sure wson took it in (a 0p
// round trip), says "ready", then prints each message event it gets, answering wson's idle
// pings, until the control connection ends.

require __DIR__.'/wson.php';

[, $address, $group] = $argv;
$control = wson_connect($address);

wson_send($control, 'e', $group, 'message');
wson_write($control, '0p');
while (($frame = wson_read($control)) !== null && $frame[0] !== 'P') {
}
say(['event' => 'ready']);

while (($frame = wson_read($control)) !== null) {
    [$command, $payload] = $frame;
    if ($command === 'p') {
        wson_write($control, '0P');
    } elseif ($command === 'e') {
        [$kind, $token, $user, $type, $data] = wson_parse_fields($payload);
        say([
            'event' => $kind,
            'token' => $token,
            'user' => $user,
            'type' => $type,
            'data' => $data,
        ]);
    }
}
