<?php
// A PHP backend's side of wson's control protocol, written as COMMANDS.md shows it:
// stream_socket_client, frames `{payload length}{command}{payload}`, and payloads made of
// fields `{length}:{bytes}` built by the one-line wson_fields of COMMANDS.md. Shared by the
// scripts in this folder, which print one JSON object per line for the Rust tests.

declare(strict_types=1);

function wson_fields(string ...$f): string { $p = ''; foreach ($f as $s) { $p .= strlen($s).':'.$s; } return $p; }

/** Connects to the control socket ("unix:///path" or "tcp://host:port"), or exits. */
function wson_connect(string $address)
{
    $control = stream_socket_client($address, $errno, $errstr, 5.0);
    if ($control === false) {
        fwrite(STDERR, "wson: $errstr\n");
        exit(1);
    }
    stream_set_timeout($control, 30);
    return $control;
}

function wson_write($control, string $bytes): void
{
    while ($bytes !== '') {
        $written = fwrite($control, $bytes);
        if ($written === false || $written === 0) {
            fwrite(STDERR, "wson: write failed\n");
            exit(1);
        }
        $bytes = substr($bytes, $written);
    }
}

/** Sends a command whose payload is made of fields. */
function wson_send($control, string $command, string ...$fields): void
{
    $p = wson_fields(...$fields);
    wson_write($control, strlen($p).$command.$p);
}

/** Reads one frame as COMMANDS.md says a backend should: the digits up to the first
 *  non-digit, the command byte, then that many bytes. Returns [command, payload], or null
 *  at the end of the connection. */
function wson_read($control): ?array
{
    $digits = '';
    while (true) {
        $c = fread($control, 1);
        if ($c === false || $c === '') {
            return null;
        }
        if (!ctype_digit($c)) {
            break;
        }
        $digits .= $c;
    }
    $length = (int) $digits;
    $payload = $length > 0 ? stream_get_contents($control, $length) : '';
    if ($payload === false || strlen($payload) !== $length) {
        return null;
    }
    return [$c, $payload];
}

/** The next frame that is not an event or an authorization request (a reply). */
function wson_reply($control): array
{
    while (($frame = wson_read($control)) !== null) {
        if ($frame[0] !== 'e' && $frame[0] !== 'z') {
            return $frame;
        }
    }
    fwrite(STDERR, "wson: the control connection ended\n");
    exit(1);
}

/** The fields of a payload, as a list of strings. */
function wson_parse_fields(string $payload): array
{
    $fields = [];
    $at = 0;
    while ($at < strlen($payload)) {
        $colon = strpos($payload, ':', $at);
        if ($colon === false) {
            fwrite(STDERR, "wson: bad fields\n");
            exit(1);
        }
        $length = (int) substr($payload, $at, $colon - $at);
        $fields[] = substr($payload, $colon + 1, $length);
        $at = $colon + 1 + $length;
    }
    return $fields;
}

/** A reply as JSON-friendly data: `#` counts, `L` pages, anything else raw. */
function wson_describe(string $command, array $frame): array
{
    [$byte, $payload] = $frame;
    $out = ['command' => $command, 'reply' => $byte];
    if ($byte === '#') {
        if (strpos($payload, ' ') === false) {
            $out['count'] = (int) $payload;
        } else {
            [$users, $connections] = explode(' ', $payload);
            $out['users'] = (int) $users;
            $out['connections'] = (int) $connections;
        }
    } elseif ($byte === 'L') {
        $fields = wson_parse_fields($payload);
        $out['cursor'] = array_shift($fields);
        $out['items'] = array_chunk($fields, 2);
    } else {
        $out['payload'] = $payload;
    }
    return $out;
}

function say(array $line): void
{
    echo json_encode($line, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE), "\n";
}
