// A recording stand-in for the `@azure/functions-core` module that the Functions host provides to the v4
// library: it keeps every registration (binding metadata and handler) so a test can inspect and invoke them.
'use strict';
const registrations = [];
module.exports = {
  registrations,
  programmingModel: undefined,
  setProgrammingModel(model) {
    module.exports.programmingModel = model;
  },
  getProgrammingModel() {
    return module.exports.programmingModel;
  },
  registerFunction(metadata, callback) {
    registrations.push({ metadata, callback });
    return { dispose() {} };
  },
  registerHook() {
    return { dispose() {} };
  },
  log() {},
};
