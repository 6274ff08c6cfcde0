<?php

/**
 * @file
 * The Drupal side of envoy-scim-drupal (README "The Drupal side") through Drupal's own APIs,
 * run by scripts/drupal-setup with the site's PHP. Read that script's header for what it does;
 * this file is its engine and is not meant to be run by hand.
 *
 * Usage: php setup.php --root=DOCROOT --attributes=FILE|none --groups=on|off|JSON
 *          --user-delete=cancel|hard_delete --rest-resource=YML [--uri=URL]
 *          [--reverse-proxy=ADDR[,ADDR…]] [--allowed-roles=ROLE[,ROLE…]]
 * Environment: DRUPAL_USERNAME, DRUPAL_PASSWORD (never on the command line: `ps` shows argv
 * to every local user).
 *
 * Every refusal is checked before the first change, so a refused run leaves the site as it was.
 * Output: one line per item, "did: …" or "ok: …" (already so), then a last line
 * "drupal-setup: N change(s) made" or "drupal-setup: nothing changed". A refusal is one line
 * "drupal-setup: error: …" on stderr and exit status 2.
 */

use Drupal\Core\DrupalKernel;
use Drupal\Core\Database\Database;
use Drupal\Core\Site\Settings;
use Drupal\Component\Serialization\Yaml;
use Symfony\Component\HttpFoundation\Request;

if (PHP_SAPI !== 'cli') {
  exit(1);
}

function refuse(string $why): never {
  fwrite(STDERR, 'drupal-setup: error: ' . str_replace("\n", ' ', $why) . "\n");
  exit(2);
}

// ------------------------------------------------------------------ reverse proxy (settings.php)
const PROXY_BEGIN = '// BEGIN envoy-scim-drupal reverse proxy (scripts/drupal-setup --reverse-proxy)';
const PROXY_END = '// END envoy-scim-drupal reverse proxy';
// A function, not a constant: Symfony's Request is autoloadable only once Drupal's autoloader is.
function proxy_headers(): int {
  return Request::HEADER_X_FORWARDED_FOR | Request::HEADER_X_FORWARDED_PROTO;
}

/** Whether the settings in force already trust exactly these proxies, for these headers only. */
function proxy_settings_match(array $proxies): bool {
  $have = Settings::get('reverse_proxy_addresses', []);
  return Settings::get('reverse_proxy', FALSE) === TRUE
    && is_array($have) && array_values($have) == $proxies
    && Settings::get('reverse_proxy_trusted_headers') === proxy_headers();
}

/** The $settings a settings.php file leaves, read in a scope of its own. */
function settings_in_file(string $file, string $app_root, string $site_path): array {
  $settings = [];
  $databases = [];
  $config = [];
  $class_loader = $GLOBALS['autoloader'];
  include $file;
  return $settings;
}

function proxy_block(array $proxies): string {
  $list = implode(', ', array_map(fn($a) => var_export($a, TRUE), $proxies));
  return PROXY_BEGIN . "\n"
    . "// Drupal takes the client's address from Envoy's X-Forwarded-For, so visitors' failed\n"
    . "// logins are counted against them, never against the gateway (docs/security.md). Only the\n"
    . "// client's address and scheme are trusted: X-Forwarded-Host, -Port and Forwarded are\n"
    . "// whatever the caller sent.\n"
    . "\$settings['reverse_proxy'] = TRUE;\n"
    . "\$settings['reverse_proxy_addresses'] = [$list];\n"
    . "\$settings['reverse_proxy_trusted_headers'] = \\Symfony\\Component\\HttpFoundation\\Request::HEADER_X_FORWARDED_FOR\n"
    . "  | \\Symfony\\Component\\HttpFoundation\\Request::HEADER_X_FORWARDED_PROTO;\n"
    . PROXY_END . "\n";
}

$changes = 0;
function did(string $what): void {
  global $changes;
  $changes++;
  echo "did: $what\n";
}
function ok(string $what): void {
  echo "ok: $what\n";
}

$opts = getopt('', ['root:', 'attributes:', 'groups:', 'user-delete:', 'rest-resource:', 'uri:', 'reverse-proxy:', 'allowed-roles:']);
$root = rtrim($opts['root'] ?? '', '/');
if ($root === '' || !is_dir($root)) {
  refuse("no such docroot: {$root}");
}
if (!is_file("$root/core/lib/Drupal.php") || !is_file("$root/autoload.php") || !is_file("$root/index.php")) {
  refuse("$root is not a Drupal docroot (no core/lib/Drupal.php, autoload.php and index.php)");
}
$user_delete = $opts['user-delete'] ?? 'cancel';
if (!in_array($user_delete, ['cancel', 'hard_delete'], TRUE)) {
  refuse("--user-delete must be cancel or hard_delete, not '$user_delete'");
}

// ------------------------------------------------------------------ what is wanted
// The plugin's allowed_roles: the gateway reads their permissions at start-up, which takes
// 'administer permissions'; each must exist and must not let its holders take over the site.
$allowed_roles = [];
foreach (explode(',', (string) ($opts['allowed-roles'] ?? '')) as $r) {
  $r = trim($r);
  if ($r === '') {
    continue;
  }
  if (!preg_match('/^[a-z0-9_]{1,32}$/', $r) || in_array($r, ['administrator', 'anonymous', 'authenticated'], TRUE)) {
    refuse("--allowed-roles: '$r' is not a role the gateway may make writable (a role machine name other than administrator, anonymous, authenticated)");
  }
  $allowed_roles[] = $r;
}
// Envoy's address(es) as Drupal sees them: Drupal then takes the client's address from the
// X-Forwarded-For Envoy writes, so visitors' failed logins never land on the address the
// gateway's own calls (which carry no X-Forwarded-For) come from.
$proxies = NULL;
if (isset($opts['reverse-proxy'])) {
  $proxies = [];
  foreach (explode(',', (string) $opts['reverse-proxy']) as $a) {
    $a = trim($a);
    if ($a === '') {
      continue;
    }
    [$ip, $bits] = array_pad(explode('/', $a, 2), 2, NULL);
    $max = str_contains((string) $ip, ':') ? 128 : 32;
    if (filter_var($ip, FILTER_VALIDATE_IP) === FALSE
      || ($bits !== NULL && (!ctype_digit($bits) || (int) $bits > $max))) {
      refuse("--reverse-proxy: '$a' is not an IP address or CIDR range (Envoy's address as Drupal sees it, e.g. 127.0.0.1)");
    }
    $proxies[] = $a;
  }
  if (!$proxies) {
    refuse('--reverse-proxy needs at least one address (Envoy\'s address as Drupal sees it)');
  }
}

$service_name = (string) getenv('DRUPAL_USERNAME');
$service_pass = (string) getenv('DRUPAL_PASSWORD');
if ($service_name === '' || $service_pass === '') {
  refuse('DRUPAL_USERNAME and DRUPAL_PASSWORD must be set in the environment (the service account; through sudo: --preserve-env=DRUPAL_USERNAME,DRUPAL_PASSWORD)');
}

// The attribute mapping (the plugin's `attributes`): Drupal field => wanted field type.
$kinds = ['string' => 'string', 'boolean' => 'boolean', 'integer' => 'integer'];
$fields = [];
$attributes = $opts['attributes'] ?? 'none';
if ($attributes !== 'none') {
  $text = @file_get_contents($attributes);
  if ($text === FALSE) {
    refuse("cannot read the attribute mapping $attributes");
  }
  $mapping = json_decode($text, TRUE);
  if (!is_array($mapping) || !array_is_list($mapping)) {
    refuse("$attributes: expected a JSON list of {\"scim\", \"drupal\"[, \"type\"]} objects");
  }
  foreach ($mapping as $i => $entry) {
    if (!is_array($entry) || !is_string($entry['scim'] ?? NULL) || !is_string($entry['drupal'] ?? NULL)) {
      refuse("$attributes: entry $i is not an object with string \"scim\" and \"drupal\"");
    }
    $kind = $entry['type'] ?? 'string';
    if (!isset($kinds[$kind])) {
      refuse("$attributes: entry $i: type must be string, boolean or integer, not '$kind'");
    }
    if (!preg_match('/^[a-z][a-z0-9_]{0,31}$/', $entry['drupal'])) {
      refuse("$attributes: entry $i: '{$entry['drupal']}' is not a Drupal field machine name (a-z, 0-9, _; at most 32)");
    }
    if (isset($fields[$entry['drupal']]) && $fields[$entry['drupal']]['type'] !== $kinds[$kind]) {
      refuse("$attributes: the field {$entry['drupal']} is mapped twice with different types");
    }
    $fields[$entry['drupal']] = ['type' => $kinds[$kind], 'scim' => $entry['scim']];
  }
}

// Groups: on, off or the plugin's `groups` object (vocabulary, membership_field, role_grants).
$groups_spec = trim($opts['groups'] ?? 'off');
$groups = NULL;
if (strtolower($groups_spec) === 'on') {
  $groups = [];
}
elseif (strtolower($groups_spec) !== 'off') {
  $groups = json_decode($groups_spec, TRUE);
  if (!is_array($groups) || ($groups !== [] && array_is_list($groups))) {
    refuse("--groups must be on, off or a JSON object (the plugin's `groups`), not '$groups_spec'");
  }
}
$vocabulary = $groups['vocabulary'] ?? 'scim_groups';
$membership_field = $groups['membership_field'] ?? 'field_scim_groups';
$role_grants = !empty($groups['role_grants']);
if ($groups !== NULL) {
  if (!is_string($vocabulary) || !preg_match('/^[a-z][a-z0-9_]{0,31}$/', $vocabulary)) {
    refuse('groups.vocabulary is not a vocabulary machine name');
  }
  if (!is_string($membership_field) || !preg_match('/^[a-z][a-z0-9_]{0,31}$/', $membership_field)) {
    refuse('groups.membership_field is not a field machine name');
  }
  if (isset($fields[$membership_field])) {
    refuse("$membership_field is both a mapped attribute and the groups' membership field");
  }
}

// ------------------------------------------------------------------ bootstrap
chdir($root);
$autoloader = require $root . '/autoload.php';
require_once $root . '/core/includes/bootstrap.inc';
$uri = $opts['uri'] ?? 'http://localhost';
$parts = parse_url($uri);
if (!$parts || !isset($parts['host'])) {
  refuse("--uri must be an absolute URL, not '$uri'");
}
$request = Request::create($uri, 'GET', [], [], [], [
  'SCRIPT_NAME' => '/index.php',
  'SCRIPT_FILENAME' => $root . '/index.php',
]);
try {
  $kernel = DrupalKernel::createFromRequest($request, $autoloader, 'prod');
}
catch (\Throwable $e) {
  refuse("cannot load the site's settings in $root: " . $e->getMessage());
}
$site_path = $kernel->getSitePath();
if (!Database::getConnectionInfo('default')) {
  refuse("no installed Drupal site at $root ($site_path/settings.php defines no database)");
}
try {
  $kernel->boot();
  $kernel->preHandle($request);
  if (!Database::getConnection()->schema()->tableExists('users_field_data')) {
    refuse("no installed Drupal site at $root (its database has no users table)");
  }
}
catch (\Throwable $e) {
  refuse("cannot boot the Drupal site at $root: " . $e->getMessage());
}
echo "ok: Drupal " . \Drupal::VERSION . " at $root ($site_path, database " . Database::getConnection()->driver() . ")\n";

$rest_resource = NULL;
if ($user_delete === 'hard_delete') {
  $yml = $opts['rest-resource'] ?? '';
  $rest_resource = is_file($yml) ? Yaml::decode(file_get_contents($yml)) : NULL;
  if (!is_array($rest_resource) || ($rest_resource['id'] ?? '') !== 'entity.user') {
    refuse("cannot read the REST resource rest.resource.entity.user.yml ($yml)");
  }
}

$module_handler = \Drupal::moduleHandler();
$etm = \Drupal::entityTypeManager();
$config_factory = \Drupal::configFactory();

// ------------------------------------------------------------------ refusals, before any change
if (Settings::get('config_readonly')) {
  refuse("the site's configuration is read-only (\$settings['config_readonly'] in $site_path/settings.php); lift it for this run");
}
if ($module_handler->moduleExists('config_readonly')) {
  refuse('the config_readonly module is enabled: the configuration is read-only; disable its lock for this run');
}
// Configuration that cannot be written: a write inside a transaction that is rolled back.
try {
  $connection = Database::getConnection();
  $tx = $connection->startTransaction();
  \Drupal::service('config.storage')->write('scim_gateway_setup.write_probe', ['probe' => TRUE]);
  $tx->rollBack();
  unset($tx);
}
catch (\Throwable $e) {
  // PDO appends the statement and its arguments; the reason is enough.
  refuse("the site's configuration cannot be written: " . preg_replace('/:\s*(INSERT|UPDATE|DELETE|MERGE|UPSERT)\b.*$/s', '', $e->getMessage()));
}

$settings_file = "$root/$site_path/settings.php";
if ($proxies !== NULL && !proxy_settings_match($proxies) && !is_writable($settings_file)) {
  refuse("--reverse-proxy: $settings_file is not writable by this user (Drupal makes it read-only after installing): chmod u+w it for this run, or add the settings of docs/security.md yourself");
}

$available = \Drupal::service('extension.list.module')->getList();
$wanted_modules = ['jsonapi', 'basic_auth'];
if ($fields || $groups !== NULL) {
  $wanted_modules[] = 'field';
}
if ($groups !== NULL) {
  $wanted_modules[] = 'taxonomy';
}
if ($user_delete === 'hard_delete') {
  array_push($wanted_modules, 'serialization', 'rest');
}
foreach ($wanted_modules as $m) {
  if (!isset($available[$m])) {
    refuse("the codebase has no module $m");
  }
}

$account_storage = $etm->getStorage('user');
$found = $account_storage->loadByProperties(['name' => $service_name]);
$account = $found ? reset($found) : NULL;
if ($account && (int) $account->id() === 1) {
  refuse("DRUPAL_USERNAME '$service_name' is uid 1; the gateway needs an account of its own");
}

foreach ($allowed_roles as $r) {
  $allowed = $etm->getStorage('user_role')->load($r);
  if (!$allowed) {
    refuse("--allowed-roles: the site has no role '$r'");
  }
  $takeover = array_values(array_filter(['administer users', 'administer permissions'], fn($p) => $allowed->hasPermission($p)));
  if ($allowed->isAdmin() || $takeover) {
    refuse("--allowed-roles: the role '$r' " . ($allowed->isAdmin() ? 'is an administrator role' : "holds '" . implode("' and '", $takeover) . "'")
      . ": its holders would be writable through SCIM, so a SCIM token would be enough to take over the site (the gateway refuses such a configuration)");
  }
  ok("role $r may be made writable (no administrator role, no 'administer users' or 'administer permissions')");
}

// A user field that exists must have the wanted type (base fields too, e.g. `timezone`).
$field_manager = \Drupal::service('entity_field.manager');
$existing = $field_manager->getFieldStorageDefinitions('user');
foreach ($fields as $name => $want) {
  if (isset($existing[$name]) && $existing[$name]->getType() !== $want['type']) {
    refuse("the user entity already has a field $name of type " . $existing[$name]->getType() . ", not {$want['type']} as the mapping needs ({$want['scim']})");
  }
  if (isset($existing[$name]) && $existing[$name]->getCardinality() !== 1) {
    refuse("the user field $name holds more than one value; the mapping needs a single value ({$want['scim']})");
  }
}
if ($groups !== NULL && isset($existing[$membership_field])) {
  $storage = $existing[$membership_field];
  if ($storage->getType() !== 'entity_reference' || $storage->getSetting('target_type') !== 'taxonomy_term') {
    refuse("the user entity already has a field $membership_field of type " . $storage->getType()
      . ($storage->getType() === 'entity_reference' ? ' to ' . $storage->getSetting('target_type') : '')
      . ', not a reference to taxonomy terms as groups need');
  }
  if ($storage->getCardinality() !== -1) {
    refuse("the user field $membership_field allows " . $storage->getCardinality() . ' value(s); groups need Unlimited');
  }
}

// ------------------------------------------------------------------ 1. modules
$to_install = array_values(array_filter($wanted_modules, fn($m) => !$module_handler->moduleExists($m)));
foreach (array_diff($wanted_modules, $to_install) as $m) {
  ok("module $m enabled");
}
if ($to_install) {
  \Drupal::service('module_installer')->install($to_install);
  foreach ($to_install as $m) {
    did("enabled module $m");
  }
  // Services of the new modules (entity types, permissions) from here on.
  $module_handler = \Drupal::moduleHandler();
  $etm = \Drupal::entityTypeManager();
  $config_factory = \Drupal::configFactory();
  $field_manager = \Drupal::service('entity_field.manager');
  $account_storage = $etm->getStorage('user');
}

// ------------------------------------------------------------------ 2. JSON:API writes
$jsonapi = $config_factory->getEditable('jsonapi.settings');
if ($jsonapi->get('read_only') === FALSE) {
  ok('JSON:API accepts writes (jsonapi.settings read_only false)');
}
else {
  $jsonapi->set('read_only', FALSE)->save();
  did('JSON:API accepts writes (jsonapi.settings read_only set to false)');
}

// ------------------------------------------------------------------ 3. user fields
$field_storage_config = $etm->getStorage('field_storage_config');
$field_config = $etm->getStorage('field_config');
$base_fields = $field_manager->getBaseFieldDefinitions('user');
$label = function (string $field): string {
  return ucfirst(str_replace('_', ' ', preg_replace('/^field_/', '', $field)));
};
foreach ($fields as $name => $want) {
  if (isset($base_fields[$name])) {
    ok("user field $name is a base field of type {$want['type']} ({$want['scim']})");
    continue;
  }
  if ($field_storage_config->load("user.$name")) {
    ok("user field storage $name ({$want['type']})");
  }
  else {
    $field_storage_config->create([
      'field_name' => $name,
      'entity_type' => 'user',
      'type' => $want['type'],
      'cardinality' => 1,
    ])->save();
    did("created user field storage $name ({$want['type']}, for {$want['scim']})");
  }
  if ($field_config->load("user.user.$name")) {
    ok("user field $name on the user bundle");
  }
  else {
    $field_config->create([
      'field_name' => $name,
      'entity_type' => 'user',
      'bundle' => 'user',
      'label' => $label($name),
    ])->save();
    did("added user field $name to the user bundle (label \"" . $label($name) . '")');
  }
}

// ------------------------------------------------------------------ 4. groups
if ($groups !== NULL) {
  $vocabularies = $etm->getStorage('taxonomy_vocabulary');
  if ($vocabularies->load($vocabulary)) {
    ok("vocabulary $vocabulary");
  }
  else {
    $vocabularies->create(['vid' => $vocabulary, 'name' => $vocabulary === 'scim_groups' ? 'SCIM groups' : $label($vocabulary)])->save();
    did("created vocabulary $vocabulary");
  }
  if ($field_storage_config->load("user.$membership_field")) {
    ok("user field storage $membership_field (unlimited references to taxonomy terms)");
  }
  else {
    $field_storage_config->create([
      'field_name' => $membership_field,
      'entity_type' => 'user',
      'type' => 'entity_reference',
      'cardinality' => -1,
      'settings' => ['target_type' => 'taxonomy_term'],
    ])->save();
    did("created user field storage $membership_field (unlimited references to taxonomy terms)");
  }
  $instance = $field_config->load("user.user.$membership_field");
  if (!$instance) {
    $field_config->create([
      'field_name' => $membership_field,
      'entity_type' => 'user',
      'bundle' => 'user',
      'label' => $membership_field === 'field_scim_groups' ? 'SCIM groups' : $label($membership_field),
      'settings' => [
        'handler' => 'default:taxonomy_term',
        'handler_settings' => ['target_bundles' => [$vocabulary => $vocabulary]],
      ],
    ])->save();
    did("added user field $membership_field to the user bundle (terms of $vocabulary)");
  }
  else {
    $handler_settings = $instance->getSetting('handler_settings') ?: [];
    $targets = $handler_settings['target_bundles'] ?? NULL;
    // No target_bundles: every vocabulary is allowed, so is this one.
    if ($targets === NULL || isset($targets[$vocabulary])) {
      ok("user field $membership_field on the user bundle (references terms of $vocabulary)");
    }
    else {
      $handler_settings['target_bundles'][$vocabulary] = $vocabulary;
      $instance->setSetting('handler_settings', $handler_settings)->save();
      did("user field $membership_field may now reference terms of $vocabulary");
    }
  }
}

// ------------------------------------------------------------------ 5. role
$wanted_permissions = ['administer users'];
if ($groups !== NULL) {
  array_push($wanted_permissions, "create terms in $vocabulary", "edit terms in $vocabulary", "delete terms in $vocabulary");
  if ($role_grants) {
    $wanted_permissions[] = 'administer permissions';
  }
}
if ($allowed_roles) {
  $wanted_permissions[] = 'administer permissions';
}
$wanted_permissions = array_values(array_unique($wanted_permissions));
$all_permissions = \Drupal::service('user.permissions')->getPermissions();
foreach ($wanted_permissions as $p) {
  if (!isset($all_permissions[$p])) {
    refuse("Drupal knows no permission '$p'");
  }
}
$roles = $etm->getStorage('user_role');
$role = $roles->load('scim_gateway');
if ($role) {
  ok('role scim_gateway');
}
else {
  $role = $roles->create(['id' => 'scim_gateway', 'label' => 'SCIM gateway']);
  $role->save();
  did('created role scim_gateway ("SCIM gateway")');
}
$missing = array_values(array_filter($wanted_permissions, fn($p) => !$role->hasPermission($p)));
foreach (array_diff($wanted_permissions, $missing) as $p) {
  ok("role scim_gateway has '$p'");
}
if ($missing) {
  foreach ($missing as $p) {
    $role->grantPermission($p);
  }
  $role->save();
  foreach ($missing as $p) {
    did("granted '$p' to role scim_gateway");
  }
}

// ------------------------------------------------------------------ 6. service account
if ($account) {
  // Loaded again: fields were added since, and a save must not work from the old definitions.
  $account_storage = $etm->getStorage('user');
  $account_storage->resetCache([$account->id()]);
  $account = $account_storage->load($account->id());
}
if (!$account) {
  $account = $account_storage->create([
    'name' => $service_name,
    'mail' => $service_name . '@scim-service.invalid',
    'status' => 1,
  ]);
  $account->setPassword($service_pass);
  $account->addRole('scim_gateway');
  $account->save();
  did("created service account $service_name (active, role scim_gateway, password from DRUPAL_PASSWORD)");
}
else {
  $changed = [];
  if (!\Drupal::service('password')->check($service_pass, $account->getPassword())) {
    $account->setPassword($service_pass);
    $changed[] = 'password reset to DRUPAL_PASSWORD';
  }
  if (!$account->isActive()) {
    $account->activate();
    $changed[] = 'activated';
  }
  if (!$account->hasRole('scim_gateway')) {
    $account->addRole('scim_gateway');
    $changed[] = 'role scim_gateway added';
  }
  if ($changed) {
    $account->save();
    did("service account $service_name: " . implode(', ', $changed));
  }
  else {
    ok("service account $service_name (uid " . $account->id() . ', active, role scim_gateway, password as DRUPAL_PASSWORD)');
  }
}

// ------------------------------------------------------------------ 7. REST resource for hard_delete
if ($rest_resource !== NULL) {
  $resources = $etm->getStorage('rest_resource_config');
  $resource = $resources->load('entity.user');
  $wanted_auth = $rest_resource['configuration']['authentication'];
  $wanted_formats = $rest_resource['configuration']['formats'];
  if (!$resource) {
    $data = $rest_resource;
    unset($data['uuid'], $data['_core']);
    $resources->create($data)->save();
    did('imported REST resource entity.user (DELETE, json, basic_auth + cookie) from rest.resource.entity.user.yml');
  }
  else {
    // An existing resource keeps what it has; DELETE, json and both authentications are added.
    $config = $resource->get('configuration');
    $before = $config;
    if ($resource->get('granularity') === 'method') {
      $method = $config['DELETE'] ?? [];
      $method['supported_formats'] = array_values(array_unique(array_merge($method['supported_formats'] ?? [], $wanted_formats)));
      $method['supported_auth'] = array_values(array_unique(array_merge($method['supported_auth'] ?? [], $wanted_auth)));
      $config['DELETE'] = $method;
    }
    else {
      $config['methods'] = array_values(array_unique(array_merge($config['methods'] ?? [], ['DELETE'])));
      $config['formats'] = array_values(array_unique(array_merge($config['formats'] ?? [], $wanted_formats)));
      $config['authentication'] = array_values(array_unique(array_merge($config['authentication'] ?? [], $wanted_auth)));
    }
    if ($config == $before && $resource->status()) {
      ok('REST resource entity.user allows DELETE in json over basic_auth and cookie');
    }
    else {
      $resource->set('configuration', $config);
      $resource->setStatus(TRUE);
      $resource->save();
      did('REST resource entity.user now allows DELETE in json over basic_auth and cookie');
    }
  }
}

// ------------------------------------------------------------------ 8. reverse proxy
if ($proxies !== NULL) {
  $what = 'settings.php trusts the reverse proxy ' . implode(', ', $proxies) . ' for X-Forwarded-For and -Proto only';
  if (proxy_settings_match($proxies)) {
    ok($what);
  }
  else {
    $text = file_get_contents($settings_file);
    $block = proxy_block($proxies);
    $pattern = '/^' . preg_quote(PROXY_BEGIN, '/') . '\n.*?^' . preg_quote(PROXY_END, '/') . '\n?/ms';
    // An earlier block goes; the new one goes last, so no later assignment in the file
    // (an included settings.local.php, say) can override it.
    $new = rtrim(preg_replace($pattern, '', $text), "\n") . "\n\n" . $block;
    if (file_put_contents($settings_file, $new, LOCK_EX) !== strlen($new)) {
      refuse("cannot write $settings_file");
    }
    $after = settings_in_file($settings_file, $root, $site_path);
    if (($after['reverse_proxy'] ?? NULL) !== TRUE || array_values($after['reverse_proxy_addresses'] ?? []) != $proxies
      || ($after['reverse_proxy_trusted_headers'] ?? NULL) !== proxy_headers()) {
      refuse("wrote the reverse-proxy settings at the end of $settings_file, but reading it back gives others");
    }
    did($what);
  }
}

if ($changes > 0) {
  // Routes (JSON:API fields, the REST route), permissions and the page cache's anonymous
  // answers all start afresh.
  drupal_flush_all_caches();
  echo "did: rebuilt caches\n";
  echo "drupal-setup: $changes change(s) made\n";
}
else {
  echo "drupal-setup: nothing changed\n";
}
