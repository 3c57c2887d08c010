// The library setup:native builds from native/ops/*.cc is loaded with process.dlopen: this makes
// it an (empty) Node-API module, so Node keeps it, and the ops its static initialisers registered
// with TensorFlow, loaded.
#include <node_api.h>
NAPI_MODULE_INIT() { return exports; }
