// The TorchScript MLP of the PyTorch benches (ReLU between Linear layers), as Python source that
// defines `class MLP` after `import sys, torch` and a fixed seed; the caller adds what it saves.
export function mlpSource(inputs, hidden, outputs) {
  return `
import sys, torch
torch.manual_seed(0)
class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(${inputs}, ${hidden}), torch.nn.ReLU(),
            torch.nn.Linear(${hidden}, ${hidden}), torch.nn.ReLU(),
            torch.nn.Linear(${hidden}, ${outputs}))
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
`
}
