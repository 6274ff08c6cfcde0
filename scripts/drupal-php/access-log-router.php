<?php

/**
 * @file
 * The router of the local site's PHP built-in server (scripts/real-drupal): writes one
 * access-log line per request with what ties it to the gateway's log line (X-Request-Id,
 * traceparent, User-Agent), as a web server's access log would, then hands the request to
 * core's .ht.router.php. The path is written without its query (filters carry addresses); no
 * other header is. (The built-in server skips auto_prepend_file for router scripts.)
 */

if (PHP_SAPI === 'cli-server' && ($scim_access_log = getenv('REAL_DRUPAL_ACCESS_LOG'))) {
  $scim_access_start = microtime(TRUE);
  register_shutdown_function(static function () use ($scim_access_log, $scim_access_start): void {
    $header = static function (string $key): string {
      $value = (string) ($_SERVER[$key] ?? '-');
      return preg_replace('/[\x00-\x1f"\\\\]/', '', $value) ?? '-';
    };
    $line = sprintf(
      "%s %s %s %d request_id=%s traceparent=%s ms=%d ua=\"%s\"\n",
      gmdate('Y-m-d\TH:i:s\Z'),
      $header('REQUEST_METHOD'),
      strtok($header('REQUEST_URI'), '?'),
      http_response_code() ?: 0,
      $header('HTTP_X_REQUEST_ID'),
      $header('HTTP_TRACEPARENT'),
      (int) round((microtime(TRUE) - $scim_access_start) * 1000),
      $header('HTTP_USER_AGENT')
    );
    file_put_contents($scim_access_log, $line, FILE_APPEND | LOCK_EX);
  });
}

return require $_SERVER['DOCUMENT_ROOT'] . '/.ht.router.php';
