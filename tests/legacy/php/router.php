<?php
// A small legacy PHP login app with PHP sessions and the insecure Intercom snippet
// (plain user_id/email, no token). tests/legacy_servers.rs serves it with
// `php -S 127.0.0.1:PORT router.php` and with Apache + mod_php (FallbackResource).
//
//   GET  /login-page            sign-in form
//   POST /login (user=NAME)     session_start(), a new session id, $_SESSION['user'], 302 to /
//   GET  /signin                sign-in form of apps that keep their session id: starts a
//                               session for every visitor
//   POST /signin (user=NAME)    $_SESSION['user'] in the session it has, no new id, 302 to /
//   GET|POST /logout            session_destroy(), PHPSESSID expired, 302 to /login-page
//   GET  /api/me                the session's user as JSON, or 401
//   GET  /account               the session's user as an HTML account page, or 302 to /login-page
//   GET  /secure                a page the app already signs itself: an intercom_user_jwt, no
//                               plain identity (or 302 to /login-page)
//   GET  /                      dashboard for a user, guest page otherwise

declare(strict_types=1);

const APP_ID = 'abc12345';
const USERS = [
    'alice' => ['id' => 'u-alice-1001', 'email' => 'alice@example.com', 'name' => 'Alice Liddell'],
    'bob' => ['id' => 'u-bob-2002', 'email' => 'bob@example.org', 'name' => 'Bob Builder'],
];
// The official Intercom loader, as pasted into the app.
const LOADER = <<<'JS'
(function(){var w=window;var ic=w.Intercom;if(typeof ic==="function"){ic('reattach_activator');ic('update',w.intercomSettings);}else{var d=document;var i=function(){i.c(arguments);};i.q=[];i.c=function(args){i.q.push(args);};w.Intercom=i;var l=function(){var s=d.createElement('script');s.type='text/javascript';s.async=true;s.src='https://widget.intercom.io/widget/abc12345';var x=d.getElementsByTagName('script')[0];x.parentNode.insertBefore(s,x);};if(document.readyState==='complete'){l();}else if(w.attachEvent){w.attachEvent('onload',l);}else{w.addEventListener('load',l,false);}}})();
JS;

function start_session(): void
{
    session_set_cookie_params(['path' => '/', 'httponly' => true, 'samesite' => 'Lax']);
    session_start();
}

/** The session's user, without creating a session for visitors. */
function current_user(): ?array
{
    if (!isset($_COOKIE[session_name()])) {
        return null;
    }
    start_session();
    $name = $_SESSION['user'] ?? null;
    session_write_close();
    return is_string($name) ? (USERS[$name] ?? null) : null;
}

/** Logs $name in (a 403 page for an unknown user); a new session id unless $keep_id. */
function log_in(mixed $name, bool $keep_id): void
{
    if (!is_string($name) || !isset(USERS[$name])) {
        http_response_code(403);
        page('Sign in', '', "<p>Unknown user.</p>\n");
        return;
    }
    start_session();
    if (!$keep_id) {
        session_regenerate_id(true);
    }
    $_SESSION['user'] = $name;
    // The account as an array too, as many apps keep it (read by the redis_session source).
    $_SESSION['account'] = USERS[$name];
    header('Cache-Control: no-store');
    header('Location: /', true, 302);
}

function h(string $s): string
{
    return htmlspecialchars($s, ENT_QUOTES, 'UTF-8');
}

function page(string $title, string $head, string $body): void
{
    header('Content-Type: text/html; charset=utf-8');
    header('Cache-Control: no-store');
    echo "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" . h($title) . "</title>\n" . $head . "</head>\n";
    // Send the head before the body is rendered, as legacy pages do: under Apache the
    // response is then chunked (and gzip-flushed mid-stream by mod_deflate).
    if (ob_get_level() > 0) {
        ob_flush();
    }
    flush();
    $rows = '';
    for ($n = 1; $n <= 60; $n++) {
        $rows .= "<tr><td>Invoice #" . (1000 + $n) . "</td><td>" . ($n * 7 % 100) . ".00 EUR</td><td>paid</td></tr>\n";
    }
    echo "<body>\n<h1>" . h($title) . "</h1>\n" . $body . "<table>\n" . $rows . "</table>\n</body>\n</html>\n";
}

function intercom(array $settings): string
{
    $json = json_encode(['api_base' => 'https://api-iam.intercom.io', 'app_id' => APP_ID] + $settings, JSON_UNESCAPED_SLASHES | JSON_HEX_TAG);
    return "<script>window.intercomSettings = " . $json . ";</script>\n<script>" . LOADER . "</script>\n";
}

/** An HS256 JWT the app signs itself, as an app already in Secure Mode does. */
function app_jwt(array $claims): string
{
    $b64 = fn (string $s): string => rtrim(strtr(base64_encode($s), '+/', '-_'), '=');
    $signed = $b64(json_encode(['alg' => 'HS256', 'typ' => 'JWT'])) . '.' . $b64(json_encode($claims));
    return $signed . '.' . $b64(hash_hmac('sha256', $signed, 'the-apps-own-messenger-secret', true));
}

$path = parse_url($_SERVER['REQUEST_URI'] ?? '/', PHP_URL_PATH) ?: '/';
$method = $_SERVER['REQUEST_METHOD'] ?? 'GET';

switch ($path) {
    case '/login-page':
        page('Sign in', '', "<form action=\"/login\" method=\"post\"><input name=\"user\"><button>Sign in</button></form>\n");
        break;

    case '/login':
        log_in($_POST['user'] ?? $_GET['user'] ?? '', false);
        break;

    case '/signin':
        if ($method === 'POST') {
            log_in($_POST['user'] ?? '', true);
            break;
        }
        start_session();
        session_write_close();
        page('Sign in', '', "<form action=\"/signin\" method=\"post\"><input name=\"user\"><button>Sign in</button></form>\n");
        break;

    case '/account':
        $u = current_user();
        if ($u === null) {
            header('Cache-Control: no-store');
            header('Location: /login-page', true, 302);
            break;
        }
        $head = "<meta name=\"user-id\" content=\"" . h($u['id']) . "\">\n";
        page('Your account', $head, "<dl><dt>Name</dt><dd class=\"name\">" . h($u['name']) . "</dd><dt>Email</dt><dd id=\"account-email\">" . h($u['email']) . "</dd></dl>\n");
        break;

    case '/secure':
        $u = current_user();
        if ($u === null) {
            header('Cache-Control: no-store');
            header('Location: /login-page', true, 302);
            break;
        }
        $jwt = app_jwt(['user_id' => $u['id'], 'email' => $u['email'], 'exp' => time() + 3600]);
        page('Secure page', intercom(['intercom_user_jwt' => $jwt]), "<p>Signed by the app itself.</p>\n");
        break;

    case '/logout':
        if (isset($_COOKIE[session_name()])) {
            start_session();
            $_SESSION = [];
            session_destroy();
        }
        setcookie(session_name(), '', ['expires' => 1, 'path' => '/', 'httponly' => true, 'samesite' => 'Lax']);
        header('Cache-Control: no-store');
        header('Location: /login-page', true, 302);
        break;

    case '/api/me':
        header('Content-Type: application/json');
        header('Cache-Control: no-store');
        $u = current_user();
        if ($u === null) {
            http_response_code(401);
            echo "{\"error\":\"not logged in\"}";
        } else {
            echo json_encode($u);
        }
        break;

    case '/':
        $u = current_user();
        if ($u === null) {
            page('Welcome', intercom([]), "<p>Hello, visitor. <a href=\"/login-page\">Sign in</a></p>\n");
        } else {
            $settings = ['user_id' => $u['id'], 'email' => $u['email'], 'name' => $u['name']];
            page('Dashboard', intercom($settings), "<p>Hello, " . h($u['name']) . ". <a href=\"/logout\">Log out</a></p>\n");
        }
        break;

    default:
        http_response_code(404);
        header('Content-Type: text/plain');
        echo "not found\n";
}
