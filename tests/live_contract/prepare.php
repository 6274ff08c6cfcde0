<?php

/**
 * @file
 * Site preparation for the live contract (drupal-live-contract): makes a freshly
 * installed Drupal look like the site the golden transcripts were recorded on
 * (shared/drupal-transcripts/README.md), and applies the changes the recording
 * made outside HTTP between exchanges. Done through Drupal's own APIs, as the
 * recording did, never over HTTP.
 *
 * Usage: php prepare.php DOCROOT STEP [ARG]
 *   init            site name, error level, modules, REST resource, account
 *                   `limited` (password from env LIVE_CONTRACT_LIMITED_PASS).
 *                   Refuses a site that already holds accounts other than
 *                   admin and limited: uids must run as in the recording.
 *   cancel-method M user.settings:cancel_method
 *   read-only 0|1   jsonapi.settings:read_only
 *   bulk            bulk01..bulk55 (status 1)
 *   second-run      vocabulary scim_groups, field_scim_groups,
 *                   field_given_name, field_family_name; caches flushed
 *   members         member01..member60, in term 1 (Engineering)
 *   version         prints \Drupal::VERSION
 * Prints "PREPARE-OK STEP" on success.
 */

use Drupal\Core\DrupalKernel;
use Symfony\Component\HttpFoundation\Request;

if (PHP_SAPI !== 'cli') {
  exit(1);
}
[$root, $step, $arg] = [$argv[1] ?? '', $argv[2] ?? '', $argv[3] ?? ''];
if ($root === '' || $step === '') {
  fwrite(STDERR, "usage: prepare.php DOCROOT STEP [ARG]\n");
  exit(2);
}
chdir($root);
$autoloader = require $root . '/autoload.php';
require_once $root . '/core/includes/bootstrap.inc';
$request = Request::create('/', 'GET', [], [], [], ['SCRIPT_NAME' => '/index.php', 'SCRIPT_FILENAME' => $root . '/index.php']);
$kernel = DrupalKernel::createFromRequest($request, $autoloader, 'prod');
$kernel->boot();
$kernel->preHandle($request);

$etm = \Drupal::entityTypeManager();
$users = $etm->getStorage('user');
$cf = \Drupal::configFactory();

switch ($step) {
  case 'version':
    echo \Drupal::VERSION, "\n";
    break;

  case 'init':
    $pass = getenv('LIVE_CONTRACT_LIMITED_PASS');
    if ($pass === FALSE || $pass === '') {
      fwrite(STDERR, "LIVE_CONTRACT_LIMITED_PASS is not set\n");
      exit(2);
    }
    $others = $users->getQuery()->accessCheck(FALSE)->condition('uid', 1, '>')->condition('name', 'limited', '<>')->count()->execute();
    if ($others > 0) {
      fwrite(STDERR, "the site holds $others account(s) besides admin and limited; the live contract needs a freshly installed site (ids must run as in the recording)\n");
      exit(3);
    }
    $installer = \Drupal::service('module_installer');
    foreach (['serialization', 'basic_auth', 'jsonapi', 'rest'] as $m) {
      if (!\Drupal::moduleHandler()->moduleExists($m)) {
        $installer->install([$m]);
      }
    }
    $gone = array_values(array_filter(['update', 'announcements_feed'], fn($m) => \Drupal::moduleHandler()->moduleExists($m)));
    if ($gone) {
      $installer->uninstall($gone);
    }
    $cf->getEditable('system.site')->set('name', 'RealDrupal')->save();
    $cf->getEditable('system.logging')->set('error_level', 'hide')->save();
    $cf->getEditable('jsonapi.settings')->set('read_only', FALSE)->save();
    $cf->getEditable('user.settings')->set('cancel_method', 'user_cancel_block')->save();
    $rest = $etm->getStorage('rest_resource_config');
    if ($existing = $rest->load('entity.user')) {
      $existing->delete();
    }
    $rest->create([
      'id' => 'entity.user',
      'plugin_id' => 'entity:user',
      'granularity' => 'resource',
      'configuration' => [
        'methods' => ['GET', 'POST', 'PATCH', 'DELETE'],
        'formats' => ['json'],
        'authentication' => ['basic_auth', 'cookie'],
      ],
    ])->save();
    // The recorded site's admin: never logged in, init as the recording shows it.
    $admin = $users->load(1);
    $admin->set('init', 'admin@localhost');
    $admin->set('access', 0);
    $admin->set('login', 0);
    $admin->save();
    $limited = $users->loadByProperties(['name' => 'limited']);
    $limited = $limited ? reset($limited) : $users->create(['name' => 'limited', 'mail' => 'limited@example.com', 'status' => 1]);
    $limited->setPassword($pass);
    $limited->save();
    if (\Drupal::database()->schema()->tableExists('flood')) {
      \Drupal::database()->truncate('flood')->execute();
    }
    drupal_flush_all_caches();
    break;

  case 'cancel-method':
    $cf->getEditable('user.settings')->set('cancel_method', $arg)->save();
    break;

  case 'read-only':
    $cf->getEditable('jsonapi.settings')->set('read_only', (bool) $arg)->save();
    break;

  case 'bulk':
    for ($i = 1; $i <= 55; $i++) {
      $n = sprintf('bulk%02d', $i);
      $users->create(['name' => $n, 'mail' => "$n@example.com", 'status' => 1])->save();
    }
    break;

  case 'second-run':
    if (!$etm->getStorage('taxonomy_vocabulary')->load('scim_groups')) {
      $etm->getStorage('taxonomy_vocabulary')->create(['vid' => 'scim_groups', 'name' => 'SCIM groups'])->save();
    }
    $storage = $etm->getStorage('field_storage_config');
    $fields = $etm->getStorage('field_config');
    if (!$storage->load('user.field_scim_groups')) {
      $storage->create([
        'field_name' => 'field_scim_groups',
        'entity_type' => 'user',
        'type' => 'entity_reference',
        'cardinality' => -1,
        'settings' => ['target_type' => 'taxonomy_term'],
      ])->save();
      $fields->create([
        'field_name' => 'field_scim_groups',
        'entity_type' => 'user',
        'bundle' => 'user',
        'label' => 'SCIM groups',
        'required' => FALSE,
        'settings' => [
          'handler' => 'default:taxonomy_term',
          'handler_settings' => ['target_bundles' => ['scim_groups' => 'scim_groups'], 'auto_create' => FALSE],
        ],
      ])->save();
    }
    foreach (['field_given_name' => 'Given name', 'field_family_name' => 'Family name'] as $name => $label) {
      if (!$storage->load("user.$name")) {
        $storage->create([
          'field_name' => $name,
          'entity_type' => 'user',
          'type' => 'string',
          'settings' => ['max_length' => 255, 'case_sensitive' => FALSE],
        ])->save();
        $fields->create(['field_name' => $name, 'entity_type' => 'user', 'bundle' => 'user', 'label' => $label, 'required' => FALSE])->save();
      }
    }
    drupal_flush_all_caches();
    break;

  case 'members':
    for ($i = 1; $i <= 60; $i++) {
      $n = sprintf('member%02d', $i);
      $users->create([
        'name' => $n,
        'mail' => "$n@example.com",
        'status' => 1,
        'field_given_name' => 'Member',
        'field_family_name' => sprintf('Number%02d', $i),
        'field_scim_groups' => [['target_id' => 1]],
      ])->save();
    }
    break;

  default:
    fwrite(STDERR, "unknown step $step\n");
    exit(2);
}
echo "PREPARE-OK $step\n";
