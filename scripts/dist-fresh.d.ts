/** Types of dist-fresh.js for the TypeScript that imports it (bench/server-from-dist.ts). */
export declare const STAMP: string;
export declare function distUpToDate(): boolean;
