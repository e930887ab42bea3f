using DistClip.Control;

namespace DistClip.Coordinator.Tests;

/// <summary>
/// <see cref="ResumeDirectory.IsUnder"/>, the coordinator's check of a reported checkpoint: the path
/// alone, since the coordinator may not see the workers' storage (the workers' own check, which also
/// looks for links, is <c>RankIdentityTests.A_resume_directory_must_lie_under_the_checkpoint_root_without_links_on_the_way</c>).
/// </summary>
public sealed class ResumeDirectoryTests
{
    [Theory]
    [InlineData("/ckpt/step-000000004", true)]
    [InlineData("/ckpt/run/step-000000004/", true)]
    [InlineData("/ckpt/./../ckpt/step-1", true)]
    [InlineData("/ckpt", false)] // the root itself is not a checkpoint
    [InlineData("/ckpt/", false)]
    [InlineData("/ckpt-evil/step-000000004", false)] // a sibling that shares the root's name as a prefix
    [InlineData("/ckpt/../elsewhere/step-000000004", false)]
    [InlineData("/", false)]
    [InlineData("", false)]
    [InlineData("/ckpt/step\0/x", false)]
    public void A_path_is_under_the_root_only_once_normalised_and_strictly_below_it(string directory, bool under)
    {
        Assert.Equal(under, ResumeDirectory.IsUnder(directory, "/ckpt"));
        Assert.Equal(under, ResumeDirectory.IsUnder(directory, "/ckpt/"));
    }
}
