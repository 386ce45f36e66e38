<?php
// php-echo: the benchmark's echo contract as a PHP-FPM script: the body back as
// application/octet-stream, or, with ECHO_DISCARD=1, "ok" without reading it.
// A measuring peer for scripts/bench, not part of swift-fcgi.
if (($_SERVER['ECHO_DISCARD'] ?? '') === '1') {
    header('Content-Type: text/plain');
    echo "ok\n";
    return;
}
header('Content-Type: application/octet-stream');
$in = fopen('php://input', 'rb');
$out = fopen('php://output', 'wb');
stream_copy_to_stream($in, $out);
