#!/usr/bin/env node
// The `rass` command: hands the built-in plugin packages to the framework CLI.
// This is the one place that names registry/ and experiments/ (docs/architecture.md).
import { runCli } from '../framework/cli/main.js';
import { registryPackage } from '../registry/index.js';
import { experimentsPackage } from '../experiments/index.js';

// Sweep workers and Slurm tasks start this same CLI: this node, its loader flags (tsx from
// source), this entry script; a debugger flag would make every worker fight for its port.
const cli = { command: process.execPath, args: [...process.execArgv.filter((a) => !a.startsWith('--inspect')), process.argv[1]] };
process.exitCode = await runCli(process.argv.slice(2), { packages: [registryPackage, experimentsPackage], cli });
