<?php
// Drives wson through the kit's class (clients/php/Wson.php) and prints one JSON line per
// step, for tests/php_client.rs. Args: control address, alice's token, bob's token.

declare(strict_types=1);

require __DIR__ . '/../../../clients/php/Wson.php';

[, $address, $alice, $bob] = $argv;
$nobody = str_repeat('n', 32);
$wson = new Wson($address, 1.0, 5.0);

function say(string $step, mixed $value): void
{
    echo json_encode(['step' => $step, 'value' => $value], JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE), "\n";
}

function page(WsonPage $page): array
{
    return ['items' => $page->items, 'next' => $page->next];
}

$wson->listen('', ['join', 'leave']);
$wson->broadcast('hello everyone');
$wson->broadcastBinary("\x00\x01\xFF");
say('c', $wson->sendConfirmed($alice, 'c to alice'));
say('c nobody', $wson->sendConfirmed($nobody, 'lost'));
say('C', $wson->sendBinaryConfirmed($alice, "\xFF"));
say('online check', $wson->isConnected($bob));
$wson->send($bob, 'd to bob');
$wson->sendBinary($bob, "\x02");
say('w', $wson->sendToUserConfirmed('alice', 'w to alice ✓'));
say('W', $wson->sendBinaryToUserConfirmed('nobody', "\x03"));
$wson->sendToUser('bob', 'u to bob');
$wson->sendBinaryToUser('bob', "\x04");
say('o', $wson->online('alice'));
say('j', $wson->subscribe($alice, 'news'));
say('J', $wson->subscribeUser('bob', 'news'));
say('event', $wson->nextEvent());
say('event', $wson->nextEvent());
$wson->wamp([32, 1, new stdClass(), 'news']);
$subscribed = $wson->nextWamp();
say('V subscribed', [$subscribed[0], $subscribed[1]]);
$wson->publish('news', 'goal');
$wson->publishBinary('news', "\x05");
$event = $wson->nextWamp();
say('V event', [$event[0], $event[1] === $subscribed[2], $event[4] ?? null]);
$wson->publish('news', 'not for the backend', ['exclude_authid' => ['backend']]);
$wson->publish('news', 'the backend hears this');
$wson->nextWamp(); // the X above
say('x options', $wson->nextWamp()[4] ?? null);
say('H', $wson->subscriberCount('news'));
$first = $wson->subscribers('news', '', 1);
say('h page 1', page($first));
say('h page 2', page($wson->subscribers('news', $first->next ?? '', 1)));
say('h each', iterator_to_array($wson->each('h', 'news')));
say('v', page($wson->topics()));
say('y', page($wson->users()));
say('g', page($wson->tokens('alice')));
say('j sport', $wson->subscribe($alice, 'sport'));
try {
    $wson->subscribe($alice, 'extra');
    say('refused', null);
} catch (WsonRefusedException $e) {
    say('refused', $e->reason);
}
say('r', $wson->unsubscribe($alice, 'news'));
say('R', $wson->unsubscribeUser('bob', 'news'));
say('event', $wson->nextEvent());
say('event', $wson->nextEvent());
say('event', $wson->nextEvent());
say('no event', $wson->nextEvent(0.2));
$status = $wson->status();
say('t', ['connections' => $status['connections'], 'pid' => is_int($status['pid'])]);
say('m', $wson->domain() !== '');
say('O', $wson->flushAuthorizationCache());
$wson->ping();
try {
    $wson->subscribe($alice, 'wamp.reserved');
    say('0E', null);
} catch (WsonProtocolException $e) {
    say('0E', get_class($e));
}
// The next command goes on a new connection.
say('o after 0E', $wson->online('bob'));
say('fragments', $wson->sendFragmented($alice, ['Hel', 'lo, ', 'World!']));
say('fragments nobody', $wson->sendFragmented($nobody, ['lost']));
say('k', $wson->kick($alice, 4003, 'bye'));
say('K', $wson->kickUser('bob'));
$wson->close();
