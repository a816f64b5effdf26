<?php
// Echoes what PHP made of the request's headers: every HTTP_* entry of $_SERVER, as a
// page the proxy injects its script into. tests/header_folding.rs serves it with
// `php -S 127.0.0.1:PORT env.php`, which names a header HTTP_ + its name uppercased
// with `-` as `_`; PHP then turns `.` (and space, `[`) into `_` too.
//
// The pairs are JSON, hex-encoded so that no value can break out of the page.

declare(strict_types=1);

$vars = [];
foreach ($_SERVER as $name => $value) {
    if (str_starts_with((string) $name, 'HTTP_')) {
        $vars[] = [(string) $name, (string) $value];
    }
}
header('Content-Type: text/html; charset=utf-8');
echo "<!DOCTYPE html><html><head><title>headers</title>"
    . "<script>window.intercomSettings={app_id:'abc12345'};</script></head>"
    . '<body><pre id="http-vars">' . bin2hex(json_encode($vars)) . "</pre></body></html>\n";
