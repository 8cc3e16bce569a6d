<?php
// Drives wson's HTTP API through the kit's WsonHttp class (clients/php/Wson.php) and prints
// one JSON line per step, for tests/http_api.rs. Args: HTTP endpoint, API key, alice's
// token, bob's token.

declare(strict_types=1);

require __DIR__ . '/../../../clients/php/Wson.php';

[, $endpoint, $key, $alice, $bob] = $argv;
$http = new WsonHttp($endpoint, $key, 5.0);

function say(string $step, mixed $value): void
{
    echo json_encode(['step' => $step, 'value' => $value], JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE), "\n";
}

function page(WsonPage $page): array
{
    return ['items' => $page->items, 'next' => $page->next];
}

function failure(callable $call): array
{
    try {
        $call();
        return ['no exception'];
    } catch (WsonHttpException $e) {
        return [$e->status, $e->errorCode];
    }
}

say('healthy', $http->healthy());
$http->broadcast('hello ✓');
$http->broadcast("\x00\x01\xFF", true);
say('send', $http->send($alice, 'to alice'));
say('send nobody', $http->send(str_repeat('n', 32), 'lost'));
say('send binary', $http->send($bob, "\xFF", true));
say('send_user', $http->sendToUser('alice', 'to alice as a user'));
say('subscribe', $http->subscribe($alice, 'news'));
say('subscribeUser', $http->subscribeUser('bob', 'news'));
$http->publish('news', 'Goal!');
say('presence', page($http->presence('news', '', 1)));
say('presenceCount', $http->presenceCount('news'));
say('topics', page($http->topics()));
say('users', page($http->users()));
say('tokens', page($http->tokens('bob')));
say('online', $http->online('alice'));
say('unsubscribe', $http->unsubscribe($alice, 'news'));
say('unsubscribeUser', $http->unsubscribeUser('bob', 'news'));
say('status', $http->status()['connections']);
say('batch', $http->batch([['online', ['user' => 'bob']], ['nope'], ['users']]));
say('metrics', str_contains($http->metrics(), '# TYPE wson_uptime_seconds gauge'));
say('bad param', failure(fn () => $http->online('')));
say('unknown method', failure(fn () => $http->call('fly')));
say('wrong key', failure(fn () => (new WsonHttp($endpoint, 'wrong-key-0123456789', 5.0))->status()));
say('kick', $http->kick($alice, 4100, 'bye'));
say('kickUser', $http->kickUser('bob'));
