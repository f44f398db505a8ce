#!/usr/bin/env node
// The `jupyterhub-resume` command. The project runs its TypeScript sources directly: register
// tsx's loader, then import the CLI entry point.
import { register } from 'tsx/esm/api';

register();
await import(new URL('../src/cli/main.ts', import.meta.url).href);
