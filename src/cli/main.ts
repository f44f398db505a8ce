/**
 * Entry point of the `jupyterhub-resume` command (bin/jupyterhub-resume.js imports this file):
 * runs the CLI with this process's arguments and exits with its code.
 */
import { runCli } from './cli-program.js';

process.exitCode = await runCli(process.argv);
