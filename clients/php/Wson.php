<?php
// Wson.php: wson's PHP kit. One file, no dependencies, PHP 8.1 or later: copy it into
// your project and `require_once` it. clients/php/README.md documents it; COMMANDS.md is
// the protocol it speaks.

declare(strict_types=1);

/** Anything the kit raises. */
class WsonException extends RuntimeException
{
}

/**
 * The control connection failed: wson could not be reached, a read or write failed or timed
 * out, or the connection ended. The connection is dropped; the next command opens a new one.
 * The command that failed is not retried: it may or may not have been carried out.
 */
class WsonConnectionException extends WsonException
{
}

/**
 * wson answered `0E` (a malformed command or a field breaking its rule, COMMANDS.md
 * "Errors") and closed the connection; the next command opens a new one.
 */
class WsonProtocolException extends WsonException
{
}

/**
 * wson answered `{len}!{reason}`: the command was well formed but not carried out (a
 * configured limit, or `cluster unavailable: Redis is down`). The connection stays open.
 */
class WsonRefusedException extends WsonException
{
    public function __construct(public readonly string $reason)
    {
        parent::__construct("wson refused: $reason");
    }
}

/** One page of a list (`g y h v`): items name => count, and the cursor of the next page. */
final class WsonPage
{
    /** @param array<string,int> $items */
    public function __construct(public readonly array $items, public readonly ?string $next)
    {
    }

    /** True when this page is the last one. */
    public function last(): bool
    {
        return $this->next === null;
    }
}

/**
 * A backend's connection to wson's control socket. It connects on the first command, and
 * again on the next command after the connection broke. Methods whose command has a reply
 * return it parsed; the others return once the frame is written.
 */
final class Wson
{
    /** Field names after the kind, per event kind (COMMANDS.md, "Events"). */
    private const EVENT_FIELDS = [
        'connected' => ['token', 'user', 'listener', 'remote', 'origin', 'path', 'subprotocol'],
        'disconnected' => ['token', 'user', 'code', 'reason', 'why'],
        'message' => ['token', 'user', 'type', 'payload'],
        'subscribed' => ['token', 'user', 'topic'],
        'unsubscribed' => ['token', 'user', 'topic'],
        'join' => ['user', 'topic'],
        'leave' => ['user', 'topic'],
        'publish' => ['topic', 'user', 'type', 'payload'],
    ];

    /** @var resource|null */
    private $stream = null;
    private string $buffer = '';
    /** @var list<array{0:string,1:string}> frames that are not replies (`e`, `V`), in order */
    private array $held = [];
    /** The `e` command to send again after a reconnect, if `listen` was called. */
    private ?string $listening = null;

    /**
     * @param string $endpoint       'unix:///run/wson/control.sock' or 'tcp://127.0.0.1:8100'
     * @param float  $connectTimeout seconds to wait for the connection
     * @param float  $timeout        seconds a write, or the wait for a reply, may take
     */
    public function __construct(
        private string $endpoint,
        private float $connectTimeout = 1.0,
        private float $timeout = 5.0,
    ) {
    }

    public function __destruct()
    {
        $this->close();
    }

    // --- plain pushes ----------------------------------------------------------------

    /** `b`: a text message to every client. */
    public function broadcast(string $message): void
    {
        $this->write('b', $message);
    }

    /** `B`: a binary message to every client. */
    public function broadcastBinary(string $message): void
    {
        $this->write('B', $message);
    }

    /** `d`: a text message to the client holding $token, unconfirmed. */
    public function send(string $token, string $message): void
    {
        $this->write('d', self::token($token) . $message);
    }

    /** `D`: a binary message to the client holding $token, unconfirmed. */
    public function sendBinary(string $token, string $message): void
    {
        $this->write('D', self::token($token) . $message);
    }

    /** `c`: a text message to the client holding $token; true when it was queued for it. */
    public function sendConfirmed(string $token, string $message): bool
    {
        return $this->ack('c', $token, $message);
    }

    /** `C`: a binary message to the client holding $token; true when it was queued for it. */
    public function sendBinaryConfirmed(string $token, string $message): bool
    {
        return $this->ack('C', $token, $message);
    }

    /** `c` with no message: is a client holding $token connected and open? */
    public function isConnected(string $token): bool
    {
        return $this->ack('c', $token, '');
    }

    /**
     * `l`, then `f`/`F`, `i`, `s`: one message to the client holding $token, sent as one
     * WebSocket frame per part, other messages for it held back until the last. True when
     * every part was queued; false when the client is not there, is locked by another
     * control connection, or went away meanwhile (the rest is then not sent).
     * @param iterable<string> $parts
     */
    public function sendFragmented(string $token, iterable $parts, bool $binary = false): bool
    {
        $parts = is_array($parts) ? array_values($parts) : iterator_to_array($parts, false);
        // One part still needs a first and a last frame: the last is then empty.
        $last = count($parts) > 1 ? array_pop($parts) : '';
        $first = array_shift($parts) ?? '';
        if (!$this->ack('l', $token, '')) {
            return false;
        }
        if (!$this->fragment($binary ? 'F' : 'f', $first)) {
            return false;
        }
        foreach ($parts as $part) {
            if (!$this->fragment('i', $part)) {
                return false;
            }
        }
        return $this->fragment('s', $last);
    }

    // --- users -------------------------------------------------------------------------

    /** `u`: a text message to every connection of $user. */
    public function sendToUser(string $user, string $message): void
    {
        $this->write('u', self::fields($user, $message));
    }

    /** `U`: a binary message to every connection of $user. */
    public function sendBinaryToUser(string $user, string $message): void
    {
        $this->write('U', self::fields($user, $message));
    }

    /** `w`: a text message to every connection of $user; the number it was queued for. */
    public function sendToUserConfirmed(string $user, string $message): int
    {
        return $this->count('w', self::fields($user, $message));
    }

    /** `W`: a binary message to every connection of $user; the number it was queued for. */
    public function sendBinaryToUserConfirmed(string $user, string $message): int
    {
        return $this->count('W', self::fields($user, $message));
    }

    /** `o`: the number of open connections of $user (0: offline). */
    public function online(string $user): int
    {
        return $this->count('o', self::fields($user));
    }

    /** `g`: a page of $user's tokens, token => connections holding it. */
    public function tokens(string $user, string $cursor = '', ?int $limit = null): WsonPage
    {
        return $this->page('g', self::fields($user, $cursor, self::limit($limit)));
    }

    /** `y`: a page of the online users, user => connections. */
    public function users(string $cursor = '', ?int $limit = null): WsonPage
    {
        return $this->page('y', self::fields($cursor, self::limit($limit)));
    }

    /** `k`: closes the connections holding $token (code null: 4000; reason '': `kicked`). */
    public function kick(string $token, ?int $code = null, string $reason = ''): int
    {
        return $this->count('k', self::fields($token, $code === null ? '' : (string) $code, $reason));
    }

    /** `K`: closes every connection of $user; the number closed. */
    public function kickUser(string $user, ?int $code = null, string $reason = ''): int
    {
        return $this->count('K', self::fields($user, $code === null ? '' : (string) $code, $reason));
    }

    // --- topics ------------------------------------------------------------------------

    /**
     * `j`: subscribes the connection(s) holding $token; the number now subscribed. $options
     * are subscribe options (['get_retained' => true]: each gets the topic's retained event,
     * its last value, first).
     */
    public function subscribe(string $token, string $topic, array $options = []): int
    {
        return $this->count('j', self::subscription($token, $topic, $options));
    }

    /**
     * `J`: subscribes $user, now and for every later connection; the number now subscribed.
     * $options as for subscribe, kept for the user's later connections too.
     */
    public function subscribeUser(string $user, string $topic, array $options = []): int
    {
        return $this->count('J', self::subscription($user, $topic, $options));
    }

    /** The fields of `j`/`J`: options only when given, as a JSON object. */
    private static function subscription(string $target, string $topic, array $options): string
    {
        if ($options === []) {
            return self::fields($target, $topic);
        }
        $json = json_encode((object) $options, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR);
        return self::fields($target, $topic, $json);
    }

    /** `r`: unsubscribes the connection(s) holding $token; the number that were subscribed. */
    public function unsubscribe(string $token, string $topic): int
    {
        return $this->count('r', self::fields($token, $topic));
    }

    /** `R`: ends $user's subscription; the number of connections that were subscribed. */
    public function unsubscribeUser(string $user, string $topic): int
    {
        return $this->count('R', self::fields($user, $topic));
    }

    /**
     * `x`: a text message to a topic's subscribers. $options are WAMP PUBLISH options for
     * the backend realm's WAMP subscribers (['exclude_authid' => ['alice'], 'retain' => true]);
     * plain subscribers get every publication.
     */
    public function publish(string $topic, string $message, array $options = []): void
    {
        $this->write('x', self::publication($topic, $message, $options));
    }

    /** `X`: a binary message to a topic's subscribers; $options as for publish. */
    public function publishBinary(string $topic, string $message, array $options = []): void
    {
        $this->write('X', self::publication($topic, $message, $options));
    }

    /** The fields of `x`/`X`: options only when given, as a JSON object. */
    private static function publication(string $topic, string $message, array $options): string
    {
        if ($options === []) {
            return self::fields($topic, $message);
        }
        $json = json_encode((object) $options, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR);
        return self::fields($topic, $message, $json);
    }

    /**
     * `Y`: publishes as `publish`/`publishBinary` and answers the publication's position,
     * ['epoch' => string, 'offset' => int], or null when the topic keeps no history
     * (README, "Missed messages").
     */
    public function publishAt(string $topic, string $message, bool $binary = false, array $options = []): ?array
    {
        $fields = [$topic, $message, $binary ? 'binary' : ''];
        if ($options !== []) {
            $fields[] = json_encode((object) $options, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR);
        }
        return $this->positionReply('Y', self::fields(...$fields));
    }

    /** `G`: the topic's position now (as `publishAt`), for a page that loads its state. */
    public function position(string $topic): ?array
    {
        return $this->positionReply('G', self::fields($topic));
    }

    private function positionReply(string $command, string $payload): ?array
    {
        [$byte, $text] = $this->request($command, $payload);
        if ($byte === '@' && $text === '') {
            return null;
        }
        if ($byte !== '@' || preg_match('/^([0-9a-f-]{1,32}):(\d{1,20})$/D', $text, $m) !== 1) {
            throw $this->unexpected($command, $byte);
        }
        return ['epoch' => $m[1], 'offset' => (int) $m[2]];
    }

    /** `h`: a page of a topic's subscribers, user => connections. */
    public function subscribers(string $topic, string $cursor = '', ?int $limit = null): WsonPage
    {
        return $this->page('h', self::fields($topic, $cursor, self::limit($limit)));
    }

    /** `H`: ['users' => n, 'connections' => n] subscribed to $topic. */
    public function subscriberCount(string $topic): array
    {
        [$byte, $payload] = $this->request('H', self::fields($topic));
        if ($byte !== '#' || preg_match('/^(\d+) (\d+)$/D', $payload, $m) !== 1) {
            throw $this->unexpected('H', $byte);
        }
        return ['users' => (int) $m[1], 'connections' => (int) $m[2]];
    }

    /** `v`: a page of the topics with subscribers, topic => connections. */
    public function topics(string $cursor = '', ?int $limit = null): WsonPage
    {
        return $this->page('v', self::fields($cursor, self::limit($limit)));
    }

    /**
     * Every item of a list, page after page: `$wson->each('y')`, `$wson->each('g', 'alice')`,
     * `$wson->each('h', 'news')`, `$wson->each('v')`. Yields name => count.
     */
    public function each(string $command, string ...$before): Generator
    {
        if (!in_array($command, ['g', 'y', 'h', 'v'], true)) {
            throw new InvalidArgumentException("not a list command: $command");
        }
        $cursor = '';
        do {
            $page = $this->page($command, self::fields(...[...$before, $cursor]));
            yield from $page->items;
            $cursor = $page->next;
        } while ($cursor !== null);
    }

    // --- status and the rest -------------------------------------------------------------

    /** `t`: the status JSON, decoded into arrays. */
    public function status(): array
    {
        [$byte, $payload] = $this->request('t', '');
        $status = $byte === 'T' ? json_decode($payload, true) : null;
        if (!is_array($status)) {
            throw $this->unexpected('t', $byte);
        }
        return $status;
    }

    /** `m`: the domain of the least loaded listener (or its address). */
    public function domain(): string
    {
        [$byte, $payload] = $this->request('m', '');
        if ($byte !== 'M') {
            throw $this->unexpected('m', $byte);
        }
        return $payload;
    }

    /** `p`: a round trip; everything sent before has been carried out when it returns. */
    public function ping(): void
    {
        [$byte] = $this->request('p', '');
        if ($byte !== 'P') {
            throw $this->unexpected('p', $byte);
        }
    }

    /** `O`: forgets the WAMP authorization answers cached for $authid ('' = all); the count. */
    public function flushAuthorizationCache(string $authid = ''): int
    {
        return $this->count('O', self::fields($authid));
    }

    // --- events and WAMP -----------------------------------------------------------------

    /**
     * `e`: this connection hears events from now on (kinds: [] or '' for every kind; group:
     * share them with the other listeners of that group). Sent again after a reconnect.
     * @param string|list<string> $kinds
     */
    public function listen(string $group = '', string|array $kinds = ''): void
    {
        $kinds = is_array($kinds) ? implode(',', $kinds) : $kinds;
        $this->listening = self::frame('e', self::fields($group, $kinds));
        $this->io(function (): void {
            $this->put($this->listening ?? '');
        });
    }

    /**
     * The next event as ['kind' => ..., then its fields by name (COMMANDS.md, "Events")], or
     * null when none came within $timeout seconds (null: the constructor's timeout).
     */
    public function nextEvent(?float $timeout = null): ?array
    {
        $frame = $this->nextHeld('e', $timeout);
        if ($frame === null) {
            return null;
        }
        $fields = self::parseFields($frame);
        $kind = (string) array_shift($fields);
        $names = self::EVENT_FIELDS[$kind] ?? null;
        if ($names === null || count($names) !== count($fields)) {
            return ['kind' => $kind, 'fields' => $fields];
        }
        return ['kind' => $kind] + array_combine($names, $fields);
    }

    /** `V`: one WAMP v2 message from the backend's session (an array, or JSON text). */
    public function wamp(array|string $message): void
    {
        $json = is_string($message)
            ? $message
            : json_encode($message, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR);
        $this->write('V', $json);
    }

    /** The next WAMP message from the router to the backend's session, or null on timeout. */
    public function nextWamp(?float $timeout = null): ?array
    {
        $frame = $this->nextHeld('V', $timeout);
        return $frame === null ? null : json_decode($frame, true, 512, JSON_THROW_ON_ERROR);
    }

    /** `q`, then closes the connection (also done when the object goes away). */
    public function close(): void
    {
        if ($this->stream !== null) {
            @fwrite($this->stream, '0q');
            $this->drop();
        }
    }

    // --- cookies ---------------------------------------------------------------------------

    /**
     * The four cookies wson checks, as name => raw value, for a new token of $user.
     * $digest: 'md5' (wson's default, as ws(s)on) or 'hmac-sha256' (conf/wson.toml `digest`).
     * $secret: the content of the file `secret_file` names, trimmed.
     */
    public static function cookieValues(
        string $secret,
        string $user,
        string $digest = 'md5',
        ?int $time = null,
        ?string $token = null,
    ): array {
        // 32 characters of [0-9A-Za-z_-]: 24 random bytes in URL-safe base64.
        $token ??= rtrim(strtr(base64_encode(random_bytes(24)), '+/', '-_'), '=');
        $time = (string) ($time ?? time());
        $mac = match ($digest) {
            'md5' => md5($secret . $user . $token . $time),
            'hmac-sha256' => hash_hmac('sha256', "$token:$time:$user", $secret),
            default => throw new InvalidArgumentException("unknown digest: $digest"),
        };
        return [
            'token' => $token,
            // wson percent-decodes the user cookie (%XX only): a space must be %20, never '+'.
            'user' => rawurlencode($user),
            'time' => $time,
            'digest' => $mac,
        ];
    }

    /**
     * Signs a new token for $user and sets the four cookies with setrawcookie (before any
     * output: they are headers); returns the token, to keep for pushing to this browser.
     * Options: digest ('md5'), secure (null: when the request came over HTTPS), httponly
     * (true), samesite ('Lax'), path ('/'), domain (''), expires (0: a session cookie).
     */
    public static function issueCookies(string $secret, string $user, array $options = []): string
    {
        $options += [
            'digest' => 'md5',
            'secure' => null,
            'httponly' => true,
            'samesite' => 'Lax',
            'path' => '/',
            'domain' => '',
            'expires' => 0,
        ];
        $secure = $options['secure']
            ?? (!empty($_SERVER['HTTPS']) && $_SERVER['HTTPS'] !== 'off');
        $cookies = self::cookieValues($secret, $user, $options['digest']);
        foreach ($cookies as $name => $value) {
            $ok = setrawcookie($name, $value, [
                'expires' => $options['expires'],
                'path' => $options['path'],
                'domain' => $options['domain'],
                'secure' => $secure,
                'httponly' => $options['httponly'],
                'samesite' => $options['samesite'],
            ]);
            if (!$ok) {
                throw new WsonException('cannot set the cookies: output has already started');
            }
        }
        return $cookies['token'];
    }

    // --- framing -------------------------------------------------------------------------

    /** Fields `{length}:{bytes}` back to back (COMMANDS.md, "Fields"). */
    public static function fields(string ...$values): string
    {
        $payload = '';
        foreach ($values as $value) {
            $payload .= strlen($value) . ':' . $value;
        }
        return $payload;
    }

    /** @return list<string> */
    public static function parseFields(string $payload): array
    {
        $fields = [];
        $at = 0;
        $end = strlen($payload);
        while ($at < $end) {
            $colon = strpos($payload, ':', $at);
            $digits = $colon === false ? '' : substr($payload, $at, $colon - $at);
            if (!ctype_digit($digits) || $colon + 1 + (int) $digits > $end) {
                throw new WsonProtocolException('malformed fields from wson');
            }
            $fields[] = substr($payload, $colon + 1, (int) $digits);
            $at = $colon + 1 + (int) $digits;
        }
        return $fields;
    }

    private static function frame(string $command, string $payload): string
    {
        return strlen($payload) . $command . $payload;
    }

    private static function token(string $token): string
    {
        if (strlen($token) !== 32) {
            throw new InvalidArgumentException('a token is 32 bytes');
        }
        return $token;
    }

    private static function limit(?int $limit): string
    {
        return $limit === null ? '' : (string) $limit;
    }

    private function write(string $command, string $payload): void
    {
        $this->io(function () use ($command, $payload): void {
            $this->put(self::frame($command, $payload));
        });
    }

    /** Sends a command and returns its reply [byte, payload]; raises on `E` and `!`. */
    private function request(string $command, string $payload): array
    {
        $reply = $this->io(function () use ($command, $payload): array {
            $this->put(self::frame($command, $payload));
            $deadline = microtime(true) + $this->timeout;
            while (true) {
                $frame = $this->readFrame($deadline);
                if ($frame === null) {
                    throw new WsonConnectionException("no reply from wson to `$command` within {$this->timeout} s");
                }
                if ($frame[0] === 'e' || $frame[0] === 'V' || $frame[0] === 'z') {
                    $this->held[] = $frame;
                } else {
                    return $frame;
                }
            }
        });
        if ($reply[0] === 'E') {
            $this->drop();
            throw new WsonProtocolException("wson answered 0E to `$command` and closed the connection");
        }
        if ($reply[0] === '!') {
            throw new WsonRefusedException($reply[1]);
        }
        return $reply;
    }

    private function ack(string $command, string $token, string $message): bool
    {
        [$byte, $payload] = $this->request($command, self::token($token) . $message);
        if (($byte !== 'A' && $byte !== 'N') || $payload !== $token) {
            throw $this->unexpected($command, $byte);
        }
        return $byte === 'A';
    }

    private function fragment(string $command, string $part): bool
    {
        [$byte] = $this->request($command, $part);
        if ($byte !== 'a' && $byte !== 'n') {
            throw $this->unexpected($command, $byte);
        }
        return $byte === 'a';
    }

    private function count(string $command, string $payload): int
    {
        [$byte, $reply] = $this->request($command, $payload);
        if ($byte !== '#' || !ctype_digit($reply)) {
            throw $this->unexpected($command, $byte);
        }
        return (int) $reply;
    }

    private function page(string $command, string $payload): WsonPage
    {
        [$byte, $reply] = $this->request($command, $payload);
        if ($byte !== 'L') {
            throw $this->unexpected($command, $byte);
        }
        $fields = self::parseFields($reply);
        $cursor = array_shift($fields);
        if ($cursor === null || count($fields) % 2 !== 0) {
            throw $this->unexpected($command, $byte);
        }
        $items = [];
        foreach (array_chunk($fields, 2) as [$name, $count]) {
            $items[$name] = (int) $count;
        }
        return new WsonPage($items, $cursor === '' ? null : $cursor);
    }

    private function unexpected(string $command, string $byte): WsonException
    {
        // The replies are out of step with the commands: start again on a new connection.
        $this->drop();
        return new WsonProtocolException("unexpected reply `$byte` from wson to `$command`");
    }

    /** A held frame of $kind, else frames read until one comes or $timeout passes. */
    private function nextHeld(string $kind, ?float $timeout): ?string
    {
        foreach ($this->held as $i => [$byte, $payload]) {
            if ($byte === $kind) {
                array_splice($this->held, $i, 1);
                return $payload;
            }
        }
        $deadline = microtime(true) + ($timeout ?? $this->timeout);
        return $this->io(function () use ($kind, $deadline): ?string {
            while (($frame = $this->readFrame($deadline)) !== null) {
                if ($frame[0] === $kind) {
                    return $frame[1];
                }
                $this->held[] = $frame;
            }
            return null;
        });
    }

    /**
     * Runs $work on a live connection: connects first if there is none, or if the one held
     * has ended (wson restarted, or dropped it), which is safe since nothing of this command
     * was sent yet. A failure during $work drops the connection and is raised, not retried.
     */
    private function io(callable $work): mixed
    {
        if ($this->stream !== null && $this->buffer === '' && feof($this->stream)) {
            $this->drop();
        }
        try {
            if ($this->stream === null) {
                $this->connect();
            }
            return $work();
        } catch (WsonConnectionException $e) {
            $this->drop();
            throw $e;
        }
    }

    private function connect(): void
    {
        $stream = @stream_socket_client($this->endpoint, $errno, $errstr, $this->connectTimeout);
        if ($stream === false) {
            throw new WsonConnectionException("cannot connect to wson at {$this->endpoint}: $errstr");
        }
        $this->stream = $stream;
        $this->buffer = '';
        if ($this->listening !== null) {
            $this->put($this->listening);
        }
    }

    private function drop(): void
    {
        if ($this->stream !== null) {
            @fclose($this->stream);
        }
        $this->stream = null;
        $this->buffer = '';
    }

    private function put(string $bytes): void
    {
        $deadline = microtime(true) + $this->timeout;
        while ($bytes !== '') {
            $this->setTimeout($deadline);
            $written = @fwrite($this->stream, $bytes);
            if ($written === false || $written === 0) {
                $why = stream_get_meta_data($this->stream)['timed_out'] ? 'timed out' : 'failed';
                throw new WsonConnectionException("write to wson $why");
            }
            $bytes = substr($bytes, $written);
        }
    }

    /**
     * The next frame [byte, payload], or null when $deadline passes first (a partial frame
     * stays buffered). The end of the connection raises.
     */
    private function readFrame(float $deadline): ?array
    {
        while (true) {
            if (preg_match('/^(\d{1,20})(\D)/', $this->buffer, $m) === 1) {
                $start = strlen($m[0]);
                $length = (int) $m[1];
                if (strlen($this->buffer) >= $start + $length) {
                    $payload = (string) substr($this->buffer, $start, $length);
                    $this->buffer = (string) substr($this->buffer, $start + $length);
                    if ($m[2] === 'p') {
                        $this->put('0P'); // wson's keepalive ping
                        continue;
                    }
                    return [$m[2], $payload];
                }
            } elseif (
                ($this->buffer !== '' && !ctype_digit($this->buffer))
                || strspn($this->buffer, '0123456789') > 20
            ) {
                // COMMANDS.md, Framing: 1 to 20 digits, then the command byte.
                throw new WsonConnectionException('wson sent a malformed frame');
            }
            if (microtime(true) >= $deadline) {
                return null;
            }
            $this->setTimeout($deadline);
            $chunk = @fread($this->stream, 65536);
            if ($chunk === false || $chunk === '') {
                $meta = stream_get_meta_data($this->stream);
                if ($meta['timed_out']) {
                    return null;
                }
                if ($meta['eof'] || $chunk === false) {
                    throw new WsonConnectionException('wson closed the control connection');
                }
                continue;
            }
            $this->buffer .= $chunk;
        }
    }

    private function setTimeout(float $deadline): void
    {
        $left = max(0.001, $deadline - microtime(true));
        $seconds = (int) floor($left);
        stream_set_timeout($this->stream, $seconds, (int) (($left - $seconds) * 1e6));
    }
}

/**
 * The HTTP API answered with an error status (README.md, "HTTP API"): `$status` is the HTTP
 * status, `$errorCode` the API's `error.code` (`unauthorized`, `bad_param`, `topic_limit`...),
 * the message its `error.message`. The connection stays usable.
 */
class WsonHttpException extends WsonException
{
    public function __construct(
        public readonly int $status,
        public readonly string $errorCode,
        string $message,
    ) {
        parent::__construct("wson HTTP API $status $errorCode: $message");
    }
}

/**
 * A backend's client of wson's HTTP API: the control commands as JSON calls, one method per
 * API method. It speaks HTTP/1.1 over one kept-alive stream (`tcp://HOST:PORT` or
 * `unix:///PATH`), opened on the first call and again after it broke; no curl extension
 * needed. A call that fails to reach wson raises WsonConnectionException (and is not
 * retried: it may or may not have been carried out); an error answer raises
 * WsonHttpException.
 */
final class WsonHttp
{
    /** @var resource|null */
    private $stream = null;
    private string $buffer = '';

    public function __construct(
        private readonly string $endpoint,
        #[\SensitiveParameter] private readonly string $apiKey,
        private readonly float $timeout = 5.0,
    ) {
    }

    public function __destruct()
    {
        $this->drop();
    }

    /** `broadcast`: the message to every client. */
    public function broadcast(string $message, bool $binary = false): void
    {
        $this->call('broadcast', self::message($message, $binary));
    }

    /** `send`: the message to the client holding $token; true when it was delivered. */
    public function send(string $token, string $message, bool $binary = false): bool
    {
        $params = ['token' => $token] + self::message($message, $binary);
        return (bool) $this->call('send', $params)['delivered'];
    }

    /** `send_user`: the message to every connection of $user; how many got it. */
    public function sendToUser(string $user, string $message, bool $binary = false): int
    {
        $params = ['user' => $user] + self::message($message, $binary);
        return (int) $this->call('send_user', $params)['connections'];
    }

    /** `publish`: the message to every connection subscribed to $topic. */
    public function publish(string $topic, string $message, bool $binary = false, array $options = []): void
    {
        $params = ['topic' => $topic] + self::message($message, $binary);
        if ($options !== []) {
            $params['options'] = (object) $options;
        }
        $this->call('publish', $params);
    }

    /** `kick` by token: closes its connections; how many. */
    public function kick(string $token, ?int $code = null, string $reason = ''): int
    {
        return $this->kickTarget(['token' => $token], $code, $reason);
    }

    /** `kick` by user: closes every connection of $user; how many. */
    public function kickUser(string $user, ?int $code = null, string $reason = ''): int
    {
        return $this->kickTarget(['user' => $user], $code, $reason);
    }

    /**
     * `subscribe` a token's connections to $topic; how many connections were added.
     * $options are params of the method: ['get_retained' => true] (the topic's last value).
     */
    public function subscribe(string $token, string $topic, array $options = []): int
    {
        $params = ['topic' => $topic, 'token' => $token] + $options;
        return (int) $this->call('subscribe', $params)['connections'];
    }

    /**
     * `subscribe` a user (its connections now and later) to $topic. $options as for
     * subscribe, ['get_retained' => true], kept for its later connections too.
     */
    public function subscribeUser(string $user, string $topic, array $options = []): int
    {
        $params = ['topic' => $topic, 'user' => $user] + $options;
        return (int) $this->call('subscribe', $params)['connections'];
    }

    /** `unsubscribe` a token's connections from $topic; how many were subscribed. */
    public function unsubscribe(string $token, string $topic): int
    {
        return (int) $this->call('unsubscribe', ['topic' => $topic, 'token' => $token])['connections'];
    }

    /** `unsubscribe` a user from $topic. */
    public function unsubscribeUser(string $user, string $topic): int
    {
        return (int) $this->call('unsubscribe', ['topic' => $topic, 'user' => $user])['connections'];
    }

    /** `online`: the open connections of $user. */
    public function online(string $user): int
    {
        return (int) $this->call('online', ['user' => $user])['connections'];
    }

    /** `tokens`: a page of $user's tokens (token => connections). */
    public function tokens(string $user, string $cursor = '', ?int $limit = null): WsonPage
    {
        return self::page($this->call('tokens', ['user' => $user] + self::cursor($cursor, $limit)));
    }

    /** `users`: a page of the online users (user => connections). */
    public function users(string $cursor = '', ?int $limit = null): WsonPage
    {
        return self::page($this->call('users', self::cursor($cursor, $limit)));
    }

    /** `topics`: a page of the topics with a subscriber (topic => connections). */
    public function topics(string $cursor = '', ?int $limit = null): WsonPage
    {
        return self::page($this->call('topics', self::cursor($cursor, $limit)));
    }

    /** `presence`: a page of $topic's subscribers (user => subscribed connections). */
    public function presence(string $topic, string $cursor = '', ?int $limit = null): WsonPage
    {
        return self::page($this->call('presence', ['topic' => $topic] + self::cursor($cursor, $limit)));
    }

    /** `presence_count`: ['count' => users, 'connections' => connections] subscribed to $topic. */
    public function presenceCount(string $topic): array
    {
        $result = $this->call('presence_count', ['topic' => $topic]);
        return ['count' => (int) $result['count'], 'connections' => (int) $result['connections']];
    }

    /** `status`: the server's figures (the control `t` JSON). */
    public function status(): array
    {
        return $this->call('status');
    }

    /**
     * `batch`: several calls in one request, run in order; one failing does not stop the
     * others. $calls: list of [method, params]. Returns one entry per call: ['result' => ...]
     * or ['error' => ['code' => ..., 'message' => ...]].
     *
     * @param list<array{0:string,1?:array}> $calls
     */
    public function batch(array $calls): array
    {
        $commands = [];
        foreach ($calls as $call) {
            $commands[] = ['method' => $call[0], 'params' => self::object($call[1] ?? [])];
        }
        $body = $this->request('POST', '/api/batch', ['commands' => $commands]);
        return $body['replies'];
    }

    /** Any API method by name: its `result`. */
    public function call(string $method, array $params = []): array
    {
        return $this->request('POST', '/api/' . rawurlencode($method), self::object($params))['result'];
    }

    /** `GET /health`: true while wson runs, false while it is stopping. */
    public function healthy(): bool
    {
        try {
            return $this->request('GET', '/health')['status'] === 'ok';
        } catch (WsonHttpException $e) {
            if ($e->status === 503) {
                return false;
            }
            throw $e;
        }
    }

    /** `GET /metrics`: the Prometheus text. */
    public function metrics(): string
    {
        [$status, $text] = $this->exchange('GET', '/metrics', null);
        if ($status >= 400) {
            throw self::error($status, json_decode($text, true));
        }
        return $text;
    }

    public function close(): void
    {
        $this->drop();
    }

    private function kickTarget(array $target, ?int $code, string $reason): int
    {
        $params = $target;
        if ($code !== null) {
            $params['code'] = $code;
        }
        if ($reason !== '') {
            $params['reason'] = $reason;
        }
        return (int) $this->call('kick', $params)['closed'];
    }

    private static function message(string $message, bool $binary): array
    {
        return $binary
            ? ['message' => base64_encode($message), 'binary' => true]
            : ['message' => $message];
    }

    private static function cursor(string $cursor, ?int $limit): array
    {
        $params = [];
        if ($cursor !== '') {
            $params['cursor'] = $cursor;
        }
        if ($limit !== null) {
            $params['limit'] = $limit;
        }
        return $params;
    }

    /** Params as a JSON object, also when empty (json_encode([]) is a list). */
    private static function object(array $params): array|stdClass
    {
        return $params === [] ? new stdClass() : $params;
    }

    private static function page(array $result): WsonPage
    {
        $items = [];
        foreach ($result['items'] as $item) {
            $items[(string) $item['name']] = (int) $item['count'];
        }
        return new WsonPage($items, $result['next']);
    }

    /** A JSON request; the decoded JSON answer, or the error it is raised as. */
    private function request(string $method, string $path, array|stdClass|null $body = null): array
    {
        [$status, $text] = $this->exchange($method, $path, $body);
        $decoded = json_decode($text, true);
        if (!is_array($decoded)) {
            throw new WsonHttpException($status, 'bad_response', 'not JSON: ' . substr($text, 0, 200));
        }
        if ($status >= 400) {
            throw self::error($status, $decoded);
        }
        return $decoded;
    }

    private static function error(int $status, mixed $decoded): WsonHttpException
    {
        $error = is_array($decoded) ? ($decoded['error'] ?? []) : [];
        $code = $error['code'] ?? (is_array($decoded) ? ($decoded['status'] ?? null) : null);
        return new WsonHttpException($status, (string) ($code ?? 'unknown'), (string) ($error['message'] ?? ''));
    }

    /** Sends one request and reads its response: [status, body]. */
    private function exchange(string $method, string $path, array|stdClass|null $body): array
    {
        $payload = $body === null ? '' : json_encode($body, JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES);
        $head = "$method $path HTTP/1.1\r\nHost: wson\r\nAuthorization: Bearer {$this->apiKey}\r\n"
            . ($body === null ? '' : "Content-Type: application/json\r\n")
            . 'Content-Length: ' . strlen($payload) . "\r\n\r\n";
        // A kept-alive stream wson closed while idle: open a new one (nothing was sent yet).
        if ($this->stream !== null && $this->buffer === '' && $this->closedByPeer()) {
            $this->drop();
        }
        try {
            if ($this->stream === null) {
                $this->connect();
            }
            $deadline = microtime(true) + $this->timeout;
            $this->put($head . $payload, $deadline);
            return $this->readResponse($deadline);
        } catch (WsonConnectionException $e) {
            $this->drop();
            throw $e;
        }
    }

    private function connect(): void
    {
        $stream = @stream_socket_client($this->endpoint, $errno, $errstr, $this->timeout);
        if ($stream === false) {
            throw new WsonConnectionException("cannot connect to wson's HTTP API at {$this->endpoint}: $errstr");
        }
        $this->stream = $stream;
        $this->buffer = '';
    }

    private function closedByPeer(): bool
    {
        $read = [$this->stream];
        $none = null;
        // Readable while idle means EOF (wson sends nothing unasked).
        return @stream_select($read, $none, $none, 0) !== 0;
    }

    private function drop(): void
    {
        if ($this->stream !== null) {
            @fclose($this->stream);
        }
        $this->stream = null;
        $this->buffer = '';
    }

    private function put(string $bytes, float $deadline): void
    {
        while ($bytes !== '') {
            $this->setTimeout($deadline);
            $written = @fwrite($this->stream, $bytes);
            if ($written === false || $written === 0) {
                throw new WsonConnectionException('write to wson failed or timed out');
            }
            $bytes = substr($bytes, $written);
        }
    }

    /** [status, body] of the next response; `Connection: close` drops the stream after it. */
    private function readResponse(float $deadline): array
    {
        while (($end = strpos($this->buffer, "\r\n\r\n")) === false) {
            $this->fill($deadline);
        }
        $lines = explode("\r\n", substr($this->buffer, 0, $end));
        if (preg_match('#^HTTP/1\.[01] (\d{3}) #', $lines[0] . ' ', $m) !== 1) {
            throw new WsonConnectionException('wson sent a malformed status line');
        }
        $headers = [];
        foreach (array_slice($lines, 1) as $line) {
            [$name, $value] = array_pad(explode(':', $line, 2), 2, '');
            $headers[strtolower(trim($name))] = trim($value);
        }
        $length = (int) ($headers['content-length'] ?? 0);
        while (strlen($this->buffer) < $end + 4 + $length) {
            $this->fill($deadline);
        }
        $body = (string) substr($this->buffer, $end + 4, $length);
        $this->buffer = (string) substr($this->buffer, $end + 4 + $length);
        if (strtolower($headers['connection'] ?? '') === 'close') {
            $this->drop();
        }
        return [(int) $m[1], $body];
    }

    private function fill(float $deadline): void
    {
        if (microtime(true) >= $deadline) {
            throw new WsonConnectionException("no answer from wson within {$this->timeout} s");
        }
        $this->setTimeout($deadline);
        $chunk = @fread($this->stream, 65536);
        if ($chunk === false || $chunk === '') {
            $meta = stream_get_meta_data($this->stream);
            if ($meta['timed_out']) {
                throw new WsonConnectionException("no answer from wson within {$this->timeout} s");
            }
            if ($meta['eof'] || $chunk === false) {
                throw new WsonConnectionException('wson closed the HTTP connection');
            }
            return;
        }
        $this->buffer .= $chunk;
    }

    private function setTimeout(float $deadline): void
    {
        $left = max(0.001, $deadline - microtime(true));
        $seconds = (int) floor($left);
        stream_set_timeout($this->stream, $seconds, (int) (($left - $seconds) * 1e6));
    }
}
