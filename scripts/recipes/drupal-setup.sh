#!/usr/bin/env bash
# The Drupal side of envoy-scim-drupal (README "The Drupal side"), for the Docker Compose
# recipe. Runs inside the official drupal:10 container:
#
#   docker compose -f scripts/recipes/docker-compose.yaml exec drupal bash /recipes/drupal-setup.sh
#
# Idempotent; each run:
#   1. adds drush to the composer project (the image has composer, not drush);
#   2. installs Drupal (standard profile) into the compose PostgreSQL database unless a site
#      is installed already;
#   3. enables the core modules jsonapi and basic_auth, and lets JSON:API accept writes;
#   4. creates the role scim_gateway with "administer users" and the service account
#      $DRUPAL_USERNAME with password $DRUPAL_PASSWORD and that role (the password is reset to
#      $DRUPAL_PASSWORD when the account exists);
#   5. with SCIM_FIELDS=1, creates the plain-text user fields that
#      scripts/emulator-attributes.json maps (names, displayName, externalId, title, phones,
#      employeeNumber, department);
#   6. with SCIM_GROUPS=1, creates the vocabulary scim_groups, the user field
#      field_scim_groups (unlimited references to it) and grants the role the term
#      permissions of that vocabulary (docs/groups.md, "Drupal-side setup for groups").
#
# Environment (set by docker-compose.yaml): POSTGRES_PASSWORD, DRUPAL_USERNAME,
# DRUPAL_PASSWORD, DRUPAL_ADMIN_PASSWORD (optional: drush prints a generated one),
# SCIM_FIELDS, SCIM_GROUPS.
set -euo pipefail

: "${POSTGRES_PASSWORD:?}" "${DRUPAL_USERNAME:?}" "${DRUPAL_PASSWORD:?}"
ROOT=/opt/drupal
cd "$ROOT"
export COMPOSER_ALLOW_SUPERUSER=1

log() { printf '[drupal-setup] %s\n' "$*" >&2; }
drush() { "$ROOT/vendor/bin/drush" --root="$ROOT/web" --uri=http://drupal "$@"; }

if [ ! -x vendor/bin/drush ]; then
    log "adding drush to the composer project"
    composer require --no-interaction --no-progress drush/drush
fi

if drush status --field=bootstrap 2>/dev/null | grep -q Successful; then
    log "Drupal is installed"
else
    log "installing Drupal (standard profile) into PostgreSQL"
    admin_pass=()
    if [ -n "${DRUPAL_ADMIN_PASSWORD:-}" ]; then
        admin_pass=(--account-pass="$DRUPAL_ADMIN_PASSWORD")
    fi
    drush site:install standard -y \
        --db-url="pgsql://drupal:${POSTGRES_PASSWORD}@db:5432/drupal" \
        --site-name="Drupal" --account-name=admin "${admin_pass[@]}"
    # drush ran as root; Apache runs as www-data.
    chown -R www-data:www-data web/sites/default/files
fi

log "enabling jsonapi and basic_auth; JSON:API accepts writes"
drush pm:install -y jsonapi basic_auth
drush config:set -y jsonapi.settings read_only 0

log "role scim_gateway, service account ${DRUPAL_USERNAME}, optional fields and groups"
script="$(mktemp --suffix=.php)"
trap 'rm -f "$script"' EXIT
cat >"$script" <<'PHP'
<?php

use Drupal\field\Entity\FieldConfig;
use Drupal\field\Entity\FieldStorageConfig;
use Drupal\taxonomy\Entity\Vocabulary;
use Drupal\user\Entity\Role;
use Drupal\user\Entity\User;

// The Drupal fields of scripts/emulator-attributes.json (all "Text (plain)").
$fields = [
  'field_given_name' => 'Given name',
  'field_family_name' => 'Family name',
  'field_display_name' => 'Display name',
  'field_external_id' => 'External ID',
  'field_title' => 'Title',
  'field_phone_work' => 'Work phone',
  'field_phone_mobile' => 'Mobile phone',
  'field_employee_number' => 'Employee number',
  'field_department' => 'Department',
];

$role = Role::load('scim_gateway');
if (!$role) {
  $role = Role::create(['id' => 'scim_gateway', 'label' => 'SCIM gateway']);
}
$role->grantPermission('administer users');
$role->save();

$name = getenv('DRUPAL_USERNAME');
$found = \Drupal::entityTypeManager()->getStorage('user')->loadByProperties(['name' => $name]);
$account = $found ? reset($found) : User::create([
  'name' => $name,
  'mail' => $name . '@scim-service.invalid',
]);
$account->setPassword(getenv('DRUPAL_PASSWORD'));
$account->addRole('scim_gateway');
$account->activate();
$account->save();

if (getenv('SCIM_FIELDS') === '1') {
  foreach ($fields as $field => $label) {
    if (!FieldStorageConfig::loadByName('user', $field)) {
      FieldStorageConfig::create([
        'field_name' => $field,
        'entity_type' => 'user',
        'type' => 'string',
      ])->save();
    }
    if (!FieldConfig::loadByName('user', 'user', $field)) {
      FieldConfig::create([
        'field_name' => $field,
        'entity_type' => 'user',
        'bundle' => 'user',
        'label' => $label,
      ])->save();
    }
  }
}

if (getenv('SCIM_GROUPS') === '1') {
  if (!Vocabulary::load('scim_groups')) {
    Vocabulary::create(['vid' => 'scim_groups', 'name' => 'SCIM groups'])->save();
  }
  if (!FieldStorageConfig::loadByName('user', 'field_scim_groups')) {
    FieldStorageConfig::create([
      'field_name' => 'field_scim_groups',
      'entity_type' => 'user',
      'type' => 'entity_reference',
      'cardinality' => -1,
      'settings' => ['target_type' => 'taxonomy_term'],
    ])->save();
  }
  if (!FieldConfig::loadByName('user', 'user', 'field_scim_groups')) {
    FieldConfig::create([
      'field_name' => 'field_scim_groups',
      'entity_type' => 'user',
      'bundle' => 'user',
      'label' => 'SCIM groups',
      'settings' => [
        'handler' => 'default:taxonomy_term',
        'handler_settings' => ['target_bundles' => ['scim_groups' => 'scim_groups']],
      ],
    ])->save();
  }
}
PHP
export DRUPAL_USERNAME DRUPAL_PASSWORD SCIM_FIELDS="${SCIM_FIELDS:-0}" SCIM_GROUPS="${SCIM_GROUPS:-0}"
drush php:script "$script"

if [ "${SCIM_GROUPS:-0}" = 1 ]; then
    # A separate run: the vocabulary's permissions exist once the vocabulary is saved.
    drush role:perm:add scim_gateway \
        'create terms in scim_groups,edit terms in scim_groups,delete terms in scim_groups'
fi

drush cache:rebuild
log "done: the gateway can log in as ${DRUPAL_USERNAME}"
