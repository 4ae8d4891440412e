// Moved to test/helpers/in-process.ts; kept as a re-export for existing imports.
export * from '../../helpers/in-process.js'
