# OCI image of the filter, for Istio's WasmPlugin (url: oci://…) and Envoy Gateway's
# EnvoyExtensionPolicy (code.type: Image): the "Docker" Wasm image format both accept, one
# layer holding plugin.wasm. Build context: the directory of the built .wasm.
#
#   scripts/build-wasm
#   docker build -f scripts/recipes/wasm-image.Dockerfile \
#       -t registry.example.org/envoy-scim-drupal:0.1.0 target/wasm32-wasip1/release
#   docker push registry.example.org/envoy-scim-drupal:0.1.0
FROM scratch
COPY envoy_scim_drupal.wasm ./plugin.wasm
