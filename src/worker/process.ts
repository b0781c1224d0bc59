import { runWorker } from './worker.js';

// The entry point the supervisor forks for each worker process.
runWorker();
