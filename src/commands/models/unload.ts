import ModelsLoad, { type ModelControlResult } from './load.js'

export default class ModelsUnload extends ModelsLoad {
  static summary = 'Ask the running daemon to unload a model (in-flight requests finish first).'
  static description =
    'POSTs /v2/repository/models/NAME/unload to the daemon at --url (default: the daemon running on the helix directory, recorded in data/daemon.json, else server.host and server.port of helix.yaml).'
  static examples = [
    '<%= config.bin %> models unload cls',
    '<%= config.bin %> models unload cls --url http://127.0.0.1:8080',
  ]
  // oclif's parse() copies only a class's own static properties, so these are restated, not inherited.
  static args = ModelsLoad.args
  static flags = ModelsLoad.flags
  protected readonly action: ModelControlResult['action'] = 'unload'
}
