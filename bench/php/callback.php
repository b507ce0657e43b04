<?php
// The bayar.gg documentation's sample callback receiver, as shops deploy it,
// plus the one thing it leaves to the shop: recording the callback in
// PostgreSQL with PDO. bench/run.sh serves it with nginx + php-fpm.
//
// Environment (set by the php-fpm pool, see bench/run.sh):
//   BAYAR_WEBHOOK_SECRET   the webhook secret (whsec_...)
//   BENCH_PDO_DSN          e.g. pgsql:host=127.0.0.1;port=5432;dbname=shop
//   BENCH_PDO_USER         database user
//   BENCH_PDO_PERSISTENT   "1": PDO::ATTR_PERSISTENT (best tuning);
//                          otherwise a new connection per request (the
//                          sample as usually deployed)

$webhookSecret = getenv('BAYAR_WEBHOOK_SECRET');

// --- the docs' sample: verify the signature --------------------------------
$payload = file_get_contents('php://input');
$data = json_decode($payload, true);
if (!is_array($data) || !isset($data['invoice_id'], $data['status'], $data['final_amount'])) {
    http_response_code(400);
    echo json_encode(['success' => false, 'error' => 'Invalid payload']);
    exit;
}

$signature = $_SERVER['HTTP_X_WEBHOOK_SIGNATURE'] ?? ($data['signature'] ?? '');
$timestamp = $_SERVER['HTTP_X_WEBHOOK_TIMESTAMP'] ?? ($data['timestamp'] ?? '');

// invoice_id|status|final_amount|timestamp, final_amount as PHP prints it
$message = $data['invoice_id'] . '|' . $data['status'] . '|' . $data['final_amount'] . '|' . $timestamp;
$expected = hash_hmac('sha256', $message, $webhookSecret);

if (!hash_equals($expected, (string)$signature)) {
    http_response_code(401);
    echo json_encode(['success' => false, 'error' => 'Invalid signature']);
    exit;
}
if (abs(time() - (int)$timestamp) > 3600) {
    http_response_code(401);
    echo json_encode(['success' => false, 'error' => 'Timestamp expired']);
    exit;
}

// --- the shop's part: record it (autocommit: one durable commit each) -----
try {
    $pdo = new PDO(getenv('BENCH_PDO_DSN'), getenv('BENCH_PDO_USER'), '', [
        PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
        PDO::ATTR_PERSISTENT => getenv('BENCH_PDO_PERSISTENT') === '1',
    ]);
    $stmt = $pdo->prepare(
        'INSERT INTO shop_callbacks (invoice_id, status, amount, final_amount, paid_at,
                                     paid_reff_num, payload)
         VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (invoice_id) DO NOTHING');
    $stmt->execute([
        $data['invoice_id'], $data['status'], $data['amount'] ?? null, $data['final_amount'],
        $data['paid_at'] ?? null, $data['paid_reff_num'] ?? null, $payload,
    ]);
} catch (PDOException $e) {
    http_response_code(503);
    echo json_encode(['success' => false, 'error' => 'Database unavailable']);
    exit;
}

http_response_code(200);
echo json_encode(['success' => true]);
