<?php

/**
 * @file
 * Non-interactive install of Drupal's standard profile for scripts/real-drupal, on MySQL/MariaDB
 * or SQLite, like `core/scripts/drupal install` but with a chosen admin password and any
 * database. The database settings are written to settings.php first, so the installer skips
 * its settings form (it does so when settings.php holds a working database, hash_salt and an
 * existing config_sync_directory), which lets the MySQL connection use a unix socket.
 *
 * Usage: php install.php --root=DOCROOT --driver=mysql --socket=PATH --database=NAME --username=NAME
 *        php install.php --root=DOCROOT --driver=sqlite --database=PATH
 * Environment: DRUPAL_ADMIN_PASSWORD (uid 1 "admin"), DRUPAL_DB_PASSWORD (mysql).
 * Then, as install-drupal.sh does for its SQLite sites: outbound HTTP gives up after 5 s, no
 * automated cron, no security advisories (nothing waits on drupal.org).
 */

if (PHP_SAPI !== 'cli') {
  exit(1);
}
$opts = getopt('', ['root:', 'driver:', 'socket::', 'database:', 'username::']);
$root = rtrim($opts['root'], '/');
chdir($root);
$class_loader = require $root . '/autoload.php';
$site_path = 'sites/default';
$settings_file = "$site_path/settings.php";
$admin_password = (string) getenv('DRUPAL_ADMIN_PASSWORD');
if ($admin_password === '') {
  fwrite(STDERR, "DRUPAL_ADMIN_PASSWORD is not set\n");
  exit(1);
}
$v11 = version_compare(\Drupal::VERSION, '11.0', '>=');
if ($opts['driver'] === 'mysql') {
  $db = [
    'driver' => 'mysql',
    'database' => $opts['database'],
    'username' => $opts['username'],
    'password' => (string) getenv('DRUPAL_DB_PASSWORD'),
    'unix_socket' => $opts['socket'],
    'host' => 'localhost',
    'prefix' => '',
    // Drupal's own defaults for MySQL, spelled out: collation is what tests look at.
    'collation' => 'utf8mb4_general_ci',
    'isolation_level' => 'READ COMMITTED',
    'namespace' => 'Drupal\\mysql\\Driver\\Database\\mysql',
    'autoload' => 'core/modules/mysql/src/Driver/Database/mysql/',
  ];
}
elseif ($opts['driver'] === 'sqlite') {
  $db = [
    'driver' => 'sqlite',
    'database' => $opts['database'],
    'prefix' => '',
    'namespace' => 'Drupal\\sqlite\\Driver\\Database\\sqlite',
    'autoload' => 'core/modules/sqlite/src/Driver/Database/sqlite/',
  ];
}
else {
  fwrite(STDERR, "--driver must be mysql or sqlite\n");
  exit(1);
}

if (!is_dir("$site_path/files") && !mkdir("$site_path/files", 0775, TRUE)) {
  throw new \RuntimeException("cannot create $site_path/files");
}
$sync = "$site_path/files/config_" . bin2hex(random_bytes(12)) . '/sync';
mkdir($sync, 0775, TRUE);
$settings = file_get_contents('sites/default/default.settings.php');
$settings .= "\n// Written by envoy-scim-drupal's scripts/real-drupal (scripts/drupal-php/install.php).\n"
  . '$databases[\'default\'][\'default\'] = ' . var_export($db, TRUE) . ";\n"
  . '$settings[\'hash_salt\'] = ' . var_export(bin2hex(random_bytes(32)), TRUE) . ";\n"
  . '$settings[\'config_sync_directory\'] = ' . var_export($sync, TRUE) . ";\n"
  . "// Fail fast when drupal.org cannot be reached (no network for tests).\n"
  . "\$settings['http_client_config']['connect_timeout'] = 5;\n";
file_put_contents($settings_file, $settings);

$parameters = [
  'interactive' => FALSE,
  'site_path' => $site_path,
  'parameters' => ['profile' => 'standard', 'langcode' => 'en'],
  'forms' => [
    'install_configure_form' => [
      'site_name' => 'Drupal',
      'site_mail' => 'drupal@example.com',
      'account' => [
        'name' => 'admin',
        'mail' => 'admin@example.com',
        'pass' => ['pass1' => $admin_password, 'pass2' => $admin_password],
      ],
      'enable_update_status_module' => TRUE,
      'enable_update_status_emails' => NULL,
    ],
  ],
];
require_once 'core/includes/install.core.inc';
$t = microtime(TRUE);
install_drupal($class_loader, $parameters, function ($install_state) {
  static $last = '';
  $tasks = install_tasks_to_perform($install_state);
  $task = current($tasks);
  $name = is_array($task) && isset($task['display_name']) ? (string) $task['display_name'] : '';
  if ($name !== '' && $name !== $last) {
    fwrite(STDERR, "  ... $name\n");
    $last = $name;
  }
});
printf("REAL-DRUPAL-INSTALL-OK %s on %s in %.1f s\n", \Drupal::VERSION, $opts['driver'], microtime(TRUE) - $t);
