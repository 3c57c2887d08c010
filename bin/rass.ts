#!/usr/bin/env node
// The `rass` command: hands the built-in plugin packages to the framework CLI.
// This is the one place that names registry/ and experiments/ (docs/architecture.md).
import { runCli } from '../framework/cli/main.js';
import { registryPackage } from '../registry/index.js';
import { experimentsPackage } from '../experiments/index.js';

process.exitCode = await runCli(process.argv.slice(2), { packages: [registryPackage, experimentsPackage] });
