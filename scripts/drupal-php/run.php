<?php

/**
 * @file
 * Runs PHP inside a bootstrapped Drupal site (what `drush php:script` / `php:eval` do), for
 * `scripts/real-drupal php`: tests toggle settings, flush caches, read config with it.
 *
 * Usage: php run.php --root=DOCROOT [--uri=URL] -- FILE [ARGS…]
 *        php run.php --root=DOCROOT [--uri=URL] -- -r CODE [ARGS…]
 * FILE and CODE see the remaining ARGS in $args.
 */

use Drupal\Core\DrupalKernel;
use Symfony\Component\HttpFoundation\Request;

if (PHP_SAPI !== 'cli') {
  exit(1);
}
$rest = [];
$opts = getopt('', ['root:', 'uri::'], $rest);
$argv_rest = array_slice($argv, $rest);
if (($argv_rest[0] ?? '') === '--') {
  array_shift($argv_rest);
}
$root = rtrim($opts['root'], '/');
if (!$argv_rest) {
  fwrite(STDERR, "usage: run.php --root=DOCROOT -- FILE|-r CODE [ARGS...]\n");
  exit(2);
}
if ($argv_rest[0] === '-r') {
  $code = $argv_rest[1] ?? '';
  $args = array_slice($argv_rest, 2);
  $file = NULL;
}
else {
  $file = realpath($argv_rest[0]);
  if ($file === FALSE) {
    fwrite(STDERR, "no such file: {$argv_rest[0]}\n");
    exit(2);
  }
  $args = array_slice($argv_rest, 1);
}

chdir($root);
$autoloader = require $root . '/autoload.php';
require_once $root . '/core/includes/bootstrap.inc';
$request = Request::create($opts['uri'] ?? 'http://localhost', 'GET', [], [], [], [
  'SCRIPT_NAME' => '/index.php',
  'SCRIPT_FILENAME' => $root . '/index.php',
]);
$kernel = DrupalKernel::createFromRequest($request, $autoloader, 'prod');
$kernel->boot();
$kernel->preHandle($request);

(function () use ($file, $args) {
  if ($file !== NULL) {
    require $file;
  }
})();
if ($file === NULL) {
  eval($code);
}
