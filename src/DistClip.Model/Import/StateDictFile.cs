using System.Buffers.Binary;
using System.Collections;
using System.IO.Compression;
using System.Text.Json;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace DistClip.Model.Import;

/// <summary>
/// The tensors of a published checkpoint, by name, on the CPU in the file's own dtype. Reads
/// PyTorch state dicts saved with <c>torch.save</c> (<c>.pt</c>, <c>.bin</c>, <c>.pth</c>; the zip
/// format) and safetensors, recognised by content rather than extension. A training checkpoint that
/// wraps the weights (<c>{"state_dict": …}</c>, open_clip's) is unwrapped and a DistributedDataParallel
/// <c>module.</c> prefix removed; both are recorded in <see cref="Notes"/>.
/// </summary>
public sealed class StateDictFile : IDisposable
{
    private const string DataParallelPrefix = "module.";

    private readonly Dictionary<string, Tensor> _tensors;

    private StateDictFile(string path, string format, Dictionary<string, Tensor> tensors, IReadOnlyList<string> nonTensors, IReadOnlyList<string> notes)
    {
        Path = path;
        Format = format;
        _tensors = tensors;
        NonTensorEntries = nonTensors;
        Notes = notes;
    }

    /// <summary>The file, as a full path.</summary>
    public string Path { get; }

    /// <summary><c>pytorch</c> or <c>safetensors</c>.</summary>
    public string Format { get; }

    public IReadOnlyDictionary<string, Tensor> Tensors => _tensors;

    /// <summary>Entries of the state dict that are not tensors (reported, never used).</summary>
    public IReadOnlyList<string> NonTensorEntries { get; }

    /// <summary>What reading had to do to reach the weights (unwrapping, prefix removal).</summary>
    public IReadOnlyList<string> Notes { get; }

    /// <summary>Name → shape of every tensor.</summary>
    public IReadOnlyDictionary<string, long[]> Shapes() => _tensors.ToDictionary(kv => kv.Key, kv => kv.Value.shape, StringComparer.Ordinal);

    /// <exception cref="PretrainedImportException">The file is missing, or not a format this reads; the message says what it is and how to convert it.</exception>
    public static StateDictFile Read(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        string full = System.IO.Path.GetFullPath(path);
        if (!File.Exists(full))
        {
            throw new PretrainedImportException($"pretrained weights not found: {full}");
        }

        var notes = new List<string>();
        using var stream = File.OpenRead(full);
        var head = new byte[9];
        int read = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        stream.Position = 0;
        if (read >= 4 && head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4)
        {
            var (tensors, others) = ReadPyTorch(stream, full, notes);
            return new StateDictFile(full, "pytorch", StripDataParallelPrefix(tensors, notes), others, notes);
        }

        // safetensors: an 8-byte little-endian header length, then the JSON header.
        if (read == head.Length && head[8] == '{' && BinaryPrimitives.ReadUInt64LittleEndian(head) < (ulong)stream.Length)
        {
            Dictionary<string, Tensor> tensors;
            try
            {
                SafetensorsHeader.Check(stream);
            }
            catch (Exception e) when (e is InvalidDataException or JsonException or EndOfStreamException)
            {
                throw new PretrainedImportException($"{full}: a safetensors file that is not safe to load ({e.Message})", e);
            }

            try
            {
                tensors = Safetensors.LoadStateDict(stream, leaveOpen: true);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                throw new PretrainedImportException($"{full}: not a readable safetensors file ({e.Message})", e);
            }

            return new StateDictFile(full, "safetensors", StripDataParallelPrefix(tensors, notes), [], notes);
        }

        throw new PretrainedImportException(
            $"{full}: neither a PyTorch zip state dict nor a safetensors file. A state dict saved with the legacy " +
            "(pre-1.6) torch.save format must be re-saved: torch.save(torch.load(f), out)");
    }

    public void Dispose()
    {
        foreach (var tensor in _tensors.Values)
        {
            tensor.Dispose();
        }

        _tensors.Clear();
    }

    private static (Dictionary<string, Tensor> Tensors, List<string> Others) ReadPyTorch(Stream stream, string path, List<string> notes)
    {
        using (var archive = new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: true))
        {
            // OpenAI's original .pt releases are TorchScript programs, not state dicts: their pickle
            // names the model's classes, which only PyTorch can rebuild.
            if (archive.Entries.Any(e => e.FullName.Contains("/code/", StringComparison.Ordinal) || e.Name == "constants.pkl"))
            {
                throw new PretrainedImportException(
                    $"{path} is a TorchScript archive (as OpenAI's original CLIP .pt files are), not a state dict. Convert it once with: " +
                    $"python3 -c \"import torch; torch.save(torch.jit.load('{path}', map_location='cpu').state_dict(), 'state_dict.pt')\"");
            }
        }

        stream.Position = 0;
        Hashtable root;
        try
        {
            root = PyTorchUnpickler.UnpickleStateDict(stream, leaveOpen: true);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new PretrainedImportException(
                $"{path}: cannot read it as a PyTorch state dict ({e.GetType().Name}: {e.Message}); save the weights with torch.save(model.state_dict(), f)", e);
        }

        // open_clip's training checkpoints: {"epoch": …, "state_dict": {…}, "optimizer": …}.
        if (root["state_dict"] is IDictionary inner)
        {
            notes.Add("weights taken from the checkpoint's 'state_dict' entry; other entries (optimizer, epoch) ignored");
            DisposeTensorsExcept(root, "state_dict");
            root = new Hashtable(inner);
        }

        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var others = new List<string>();
        foreach (DictionaryEntry entry in root)
        {
            string name = entry.Key.ToString() ?? "";
            if (entry.Value is Tensor tensor)
            {
                tensors[name] = tensor;
            }
            else
            {
                others.Add($"{name} ({entry.Value?.GetType().Name ?? "null"})");
            }
        }

        return (tensors, others);
    }

    private static void DisposeTensorsExcept(Hashtable table, string keep)
    {
        foreach (DictionaryEntry entry in table)
        {
            if (!Equals(entry.Key, keep) && entry.Value is Tensor tensor)
            {
                tensor.Dispose();
            }
        }
    }

    private static Dictionary<string, Tensor> StripDataParallelPrefix(Dictionary<string, Tensor> tensors, List<string> notes)
    {
        if (tensors.Count == 0 || !tensors.Keys.All(k => k.StartsWith(DataParallelPrefix, StringComparison.Ordinal)))
        {
            return tensors;
        }

        notes.Add($"removed the '{DataParallelPrefix}' prefix (DistributedDataParallel) from every name");
        return tensors.ToDictionary(kv => kv.Key[DataParallelPrefix.Length..], kv => kv.Value, StringComparer.Ordinal);
    }
}
