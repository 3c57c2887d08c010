/** Package entry (`import ... from 'rass'`): the plugin-author API. */
export * from './api.js';
