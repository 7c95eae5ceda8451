#!/usr/bin/env node
// The `avatar-sessions` CLI: runs src/cli.ts through tsx, like every other entry point of this project.
require('tsx/cjs');
require('../src/cli.ts').cli(process.argv.slice(2));
