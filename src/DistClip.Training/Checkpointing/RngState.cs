using TorchSharp;

namespace DistClip.Training.Checkpointing;

/// <summary>
/// libtorch's default CPU generator state (<c>torch.random.get_rng_state</c>/<c>set_rng_state</c>,
/// a byte tensor; 5,056 bytes for the Mersenne Twister). Store it in state.json (e.g. base64).
/// </summary>
/// <remarks>
/// Covers the default CPU generator only: CUDA generators and explicitly created
/// <c>torch.Generator</c> objects (use their own <c>get_state</c>/<c>set_state</c>) are not captured,
/// nor is any .NET <see cref="Random"/>.
/// </remarks>
public static class RngState
{
    public static byte[] Capture()
    {
        using torch.Tensor state = torch.random.get_rng_state();
        return state.bytes.ToArray();
    }

    public static void Restore(byte[] state)
    {
        ArgumentNullException.ThrowIfNull(state);
        using torch.Tensor tensor = torch.tensor(state, torch.uint8);
        torch.random.set_rng_state(tensor);
    }
}
