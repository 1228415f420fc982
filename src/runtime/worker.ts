// The entry point of the processor worker thread started by WorkerProcessors.
import { serveWorker } from "./host.js";

declare const self: Worker;
serveWorker(self as never);
