#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    envoy_scim_drupal_fuzz::request_body(data);
});
