<?php
// A PHP backend filling a topic: php publish.php CONTROL_ADDRESS USER TOPIC
// Subscribes the user (J), publishes text and binary (x, X), messages the user (w), asks
// who subscribes (H, h, v), unsubscribes the user (R), publishes again (not delivered) and
// messages the user once more (w); prints each reply.

require __DIR__.'/wson.php';

[, $address, $user, $topic] = $argv;
$control = wson_connect($address);

wson_send($control, 'J', $user, $topic);
say(wson_describe('J', wson_reply($control)));
wson_send($control, 'x', $topic, "Goal! \u{26bd}");
wson_send($control, 'X', $topic, "\x00\xff");
wson_send($control, 'w', $user, 'direct');
say(wson_describe('w', wson_reply($control)));
wson_send($control, 'H', $topic);
say(wson_describe('H', wson_reply($control)));
wson_send($control, 'h', $topic);
say(wson_describe('h', wson_reply($control)));
wson_write($control, '0v');
say(wson_describe('v', wson_reply($control)));
wson_send($control, 'R', $user, $topic);
say(wson_describe('R', wson_reply($control)));
wson_send($control, 'x', $topic, 'not delivered: unsubscribed');
wson_send($control, 'w', $user, 'last');
say(wson_describe('w', wson_reply($control)));

wson_write($control, '0q');
fclose($control);
