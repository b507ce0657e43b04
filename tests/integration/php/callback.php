<?php
/*
 * callback.php: a shop's webhook receiver as the bayar.gg documentation shows
 * it, used unchanged as the target of bayarhook's forward action (sign =
 * bayar). It proves that a forwarded callback is accepted by the gateway's
 * own PHP sample: the signature is
 *
 *   hash_hmac('sha256', invoice_id|status|final_amount|timestamp, secret)
 *
 * over the fields as json_decode() gives them and the X-Webhook-Timestamp
 * header, compared with hash_equals().
 *
 * The tests pass the secret and where to record what arrived through the
 * environment of `php -S`: CALLBACK_SECRET, CALLBACK_OUT (a JSON line per
 * request, accepted or not), CALLBACK_STATUS (answer this HTTP status
 * instead, to simulate a failing shop).
 */

$secret = getenv('CALLBACK_SECRET');
$out = getenv('CALLBACK_OUT');

$payload = file_get_contents('php://input');
$data = json_decode($payload, true);

$signature = $_SERVER['HTTP_X_WEBHOOK_SIGNATURE'] ?? '';
$timestamp = $_SERVER['HTTP_X_WEBHOOK_TIMESTAMP'] ?? '';

function record($out, $entry)
{
    if ($out) {
        file_put_contents($out, json_encode($entry) . "\n", FILE_APPEND | LOCK_EX);
    }
}

header('Content-Type: application/json');

if (!is_array($data) || !isset($data['invoice_id'], $data['status'], $data['final_amount'])) {
    http_response_code(400);
    record($out, ['ok' => false, 'why' => 'bad payload', 'body' => $payload]);
    echo json_encode(['success' => false, 'message' => 'Invalid payload']);
    exit;
}

// The documentation's check, verbatim in substance.
$expected = hash_hmac(
    'sha256',
    $data['invoice_id'] . '|' . $data['status'] . '|' . $data['final_amount'] . '|' . $timestamp,
    $secret
);

$headers = [
    'content_type' => $_SERVER['CONTENT_TYPE'] ?? '',
    'event' => $_SERVER['HTTP_X_WEBHOOK_EVENT'] ?? '',
    'signature' => $signature,
    'timestamp' => $timestamp,
    'invoice' => $_SERVER['HTTP_X_INVOICE_ID'] ?? '',
    'job' => $_SERVER['HTTP_X_BAYARHOOK_JOB_ID'] ?? '',
    // bayarhook's own: why the payment is flagged; null when the header is absent.
    'flagged' => $_SERVER['HTTP_X_BAYARHOOK_FLAGGED'] ?? null,
];

if (!hash_equals($expected, $signature)) {
    http_response_code(401);
    record($out, ['ok' => false, 'why' => 'Invalid signature', 'headers' => $headers,
                  'data' => $data]);
    echo json_encode(['success' => false, 'message' => 'Invalid signature']);
    exit;
}

$status = getenv('CALLBACK_STATUS');
if ($status) {
    http_response_code((int)$status);
    record($out, ['ok' => false, 'why' => "answered $status", 'headers' => $headers,
                  'data' => $data]);
    echo json_encode(['success' => false, 'message' => 'Shop unavailable']);
    exit;
}

// Here a shop would mark the order paid.
record($out, ['ok' => true, 'headers' => $headers, 'data' => $data,
              'body_signature' => $data['signature'] ?? null,
              'body_timestamp' => $data['timestamp'] ?? null]);
echo json_encode(['success' => true]);
