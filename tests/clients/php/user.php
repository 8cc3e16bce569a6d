<?php
// A PHP backend acting on every tab of one user: php user.php CONTROL_ADDRESS USER
// Sends a confirmed message to the user (w), asks how many connections it has (o), lists
// its tokens (g), then kicks it (K) with code 4003 and reason "see you"; prints each reply.

require __DIR__.'/wson.php';

[, $address, $user] = $argv;
$control = wson_connect($address);

wson_send($control, 'w', $user, "Your order shipped \u{2713}");
say(wson_describe('w', wson_reply($control)));
wson_send($control, 'o', $user);
say(wson_describe('o', wson_reply($control)));
wson_send($control, 'g', $user);
say(wson_describe('g', wson_reply($control)));
wson_send($control, 'K', $user, '4003', 'see you');
say(wson_describe('K', wson_reply($control)));

wson_write($control, '0q');
fclose($control);
